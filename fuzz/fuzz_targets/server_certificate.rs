//! Any bytes as the start of a server's stream after a TLS ≤ 1.2 ServerHello:
//! reading the leaf certificate never panics, and it decides left to right —
//! every prefix of the input either needs more bytes or gives the same answer
//! as the whole.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tlscensus::tls::extract::TlsError;
use tlscensus::tls::parse_server_certificate;

fuzz_target!(|data: &[u8]| {
    let mut scratch = Vec::new();
    let whole = parse_server_certificate(data, &mut scratch, 16384);
    for cut in [1usize, 5, 9, data.len() / 2, data.len().saturating_sub(1)] {
        if cut < data.len() {
            let p = parse_server_certificate(&data[..cut], &mut scratch, 16384);
            assert!(
                p == Err(TlsError::NeedMore) || p == whole,
                "prefix {cut}: {p:?}, whole: {whole:?}"
            );
        }
    }
});
