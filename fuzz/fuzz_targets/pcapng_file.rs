//! Any bytes as a pcapng stream: the block reader never panics, every frame
//! is within its block and the snap-length bound, and reading stops (end,
//! truncation or error) without looping.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tlscensus::capture::pcapng::PcapNgFile;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(mut file)) = PcapNgFile::from_reader(std::io::Cursor::new(data.to_vec())) else {
        return;
    };
    let mut frames = 0usize;
    let mut bytes = 0usize;
    let _ = file.for_each_frame(|f| {
        assert!(f.data.len() <= 262_144);
        frames += 1;
        bytes += f.data.len();
    });
    // Each frame took a block of at least 16 bytes (a Simple Packet Block's
    // header and trailer) beside its data.
    assert!(frames * 16 + bytes <= data.len());
});
