//! Any bytes as an exporter request head: the parser never panics, and what
//! it accepts is a request line the exporter can route.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tlscensus::exporter::{find_head_end, parse_request};

fuzz_target!(|data: &[u8]| {
    let head = match find_head_end(data) {
        Some(end) => &data[..end],
        None => data,
    };
    if let Ok(r) = parse_request(head) {
        assert!(r.path.starts_with('/'));
        assert!(!r.method.is_empty());
        assert!(!r.path.contains('?'));
        assert!(r.authorization.is_none_or(|a| !a.contains('\n')));
    }
});
