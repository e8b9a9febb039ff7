//! Any bytes as the start of a TCP direction: extraction never panics, a
//! verdict on a prefix is never contradicted by "not TLS" on the whole, and
//! reading the stream as it grows (one reader, which keeps its position)
//! gives the verdict of reading it whole; reading it with the handshake
//! details kept (the richer event layouts) and judged by the server-policy
//! presets changes no verdict, and every fingerprinted hello is judged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tlscensus::tls::extract::{Opening, OpeningReader, TlsError, parse_opening};
use tlscensus::policy::{PolicySet, presets};
use tlscensus::tls::fingerprint::Fingerprinter;

/// The presets, read once (reading them is setup, not what is fuzzed).
static PRESETS: std::sync::OnceLock<Option<std::sync::Arc<PolicySet>>> = std::sync::OnceLock::new();

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
    // The stream start grows by a step taken from the last byte.
    let step = 1 + data.last().map_or(0, |b| usize::from(*b % 97));
    let mut reader = OpeningReader::default();
    let mut fingerprints = Fingerprinter::with_ja3().with_details(1 << 20);
    if let Some(set) = PRESETS.get_or_init(|| {
        PolicySet::from_args(&presets::ALL.map(|(n, _)| n.to_string()))
            .ok()
            .map(std::sync::Arc::new)
    }) {
        fingerprints = fingerprints.with_policies(std::sync::Arc::clone(set));
    }
    let mut end = 0;
    let grown = loop {
        end = (end + step).min(data.len());
        let r = reader.read(&data[..end], &mut scratch, 16384, Some(&mut fingerprints));
        let waiting = matches!(r, Err(TlsError::NeedMore | TlsError::AfterRetry(_)));
        if !waiting || end == data.len() {
            break r;
        }
    };
    // The details are kept (the budget has room), and are all that differs.
    let grown = grown.map(|o| match o {
        Opening::ClientHello(mut c) => {
            assert!(c.cut || c.sslv2_format || c.detail.is_some());
            assert_eq!(c.fingerprint.is_some(), c.verdicts.judged());
            c.detail = None;
            c.verdicts = Default::default();
            Opening::ClientHello(c)
        }
        Opening::Answer(a, _) => Opening::Answer(a, None),
    });
    assert_eq!(grown, whole, "grown by {step}");
});
