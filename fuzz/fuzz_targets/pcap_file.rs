//! Any bytes as a classic pcap file: the block reader never panics, every
//! frame is within the record and snap-length bounds, and reading stops
//! (end, truncation or error) without looping.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tlscensus::capture::pcapfile::PcapFile;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(mut file)) = PcapFile::from_reader(std::io::Cursor::new(data.to_vec())) else {
        return;
    };
    let mut frames = 0usize;
    let mut bytes = 0usize;
    let _ = file.for_each_frame(|f| {
        assert!(f.data.len() <= 262_144);
        frames += 1;
        bytes += f.data.len();
    });
    // Each frame took a 16-byte record header of the input.
    assert!(frames * 16 + bytes <= data.len());
});
