//! Arbitrary segment sequences into one stream start: never panics, never
//! holds more than its cap, and the prefix it returns is made of sent bytes.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tlscensus::flow::{StreamLimits, StreamStart};

#[derive(Arbitrary, Debug)]
struct Input {
    isn: u32,
    syn: bool,
    segments: Vec<(u16, u8, u8)>, // (offset, length, byte offset into the pattern)
}

fuzz_target!(|input: Input| {
    let limits = StreamLimits { max_bytes: 2048, max_pending: 8 };
    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut s = StreamStart::default();
    if input.syn {
        s.on_syn(input.isn);
    }
    let base = input.isn.wrapping_add(1);
    for (ts, (off, len, _)) in input.segments.iter().enumerate() {
        let off = usize::from(*off) % 3000;
        let end = (off + usize::from(*len)).min(pattern.len());
        s.ingest(ts as u64, base.wrapping_add(off as u32), &pattern[off..end], limits);
        assert!(s.bytes().len() <= limits.max_bytes);
    }
    if input.syn {
        // With a SYN the stream start is fixed: the prefix is the pattern's start.
        assert_eq!(s.bytes(), &pattern[..s.bytes().len()]);
    }
});
