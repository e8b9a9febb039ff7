//! Decode → fragments → flow table → reassembly → TLS extraction, on a
//! sequence of arbitrary frames: never panics, stays within its bounds.
//! Input: records of [link type selector: u8][length: u16 LE][frame bytes].
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tlscensus::capture::Frame;
use tlscensus::config::Config;
use tlscensus::run::InlineCensus;

const LINKTYPES: [i32; 10] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276];

static CONFIG: OnceLock<Config> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let cfg = CONFIG.get_or_init(|| {
        let mut cfg = tlscensus::config::defaults();
        cfg.table.max_flows = 16;
        cfg.table.max_handshakes = 8;
        cfg.table.max_buffer_bytes = 64 * 1024;
        cfg.max_fragments = 8;
        cfg
    });
    let mut census = InlineCensus::new(cfg);
    let mut rest = data;
    let mut ts = 1_700_000_000_000_000_000u64;
    while let [sel, a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*a, *b])).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        ts += u64::from(*sel) * 10_000_000;
        census.push(&Frame {
            ts_ns: ts,
            linktype: LINKTYPES[usize::from(*sel) % LINKTYPES.len()],
            data: frame,
            wire_len: frame.len() as u32,
        });
        assert!(census.flows_tracked() <= 16);
    }
    census.finish();
    assert_eq!(census.flows_tracked(), 0);
});
