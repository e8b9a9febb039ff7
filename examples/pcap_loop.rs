//! The throughput baseline: a bare libpcap read loop (the `pcap` crate's
//! `next_packet`, i.e. `pcap_next_ex`) that only counts packets and bytes.
//! Nothing a libpcap-based tool does can be faster than this on the same file.
//!
//! ```text
//! cargo run --release --example pcap_loop -- FILE...
//! ```

fn main() {
    let mut packets = 0u64;
    let mut bytes = 0u64;
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: pcap_loop FILE...");
        std::process::exit(2);
    }
    for f in &files {
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
