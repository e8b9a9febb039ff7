//! Any bytes as the start of a TCP direction: extraction never panics, and a
//! verdict on a prefix is never contradicted by "not TLS" on the whole.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tlscensus::tls::extract::{TlsError, parse_opening};

fuzz_target!(|data: &[u8]| {
    let mut scratch = Vec::new();
    let whole = parse_opening(data, &mut scratch, 16384);
    if let Ok(_) | Err(TlsError::Malformed(_)) = whole {
        // Every prefix was at worst "need more", never "not TLS".
        for cut in [1usize, 2, 3, 4, 5] {
            if cut < data.len() {
                let p = parse_opening(&data[..cut], &mut scratch, 16384);
                assert_ne!(p, Err(TlsError::NotTls), "prefix {cut} of a TLS stream judged not TLS");
            }
        }
    }
});
