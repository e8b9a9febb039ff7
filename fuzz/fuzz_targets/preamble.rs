//! Any bytes as the two directions of a flow that does not open with TLS:
//! the preamble parsers never panic, an offset they report is inside the
//! stream, and a decision reached on prefixes of the two directions (TLS at
//! given offsets, no TLS, give up) is the decision on the whole: the flow's
//! outcome does not depend on how its bytes were segmented. The same for
//! the search for TLS after an unknown opening, either side the client, and
//! OpenVPN's and TDS's unwrapping: a longer stream unwraps to a longer
//! output with the shorter one's as its start.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tlscensus::preamble::{MAX_PREAMBLE, Verdict, openvpn, parse, search_unknown, tds};

fuzz_target!(|data: &[u8]| {
    // The first byte splits the input into the two directions.
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(cut).min(rest.len()) * rest.len() / 256;
    let (a, b) = rest.split_at(at.min(rest.len()));
    let whole = parse([a, b]);
    if let Verdict::Tls(p) = &whole {
        assert!(p.tls_at[0] <= a.len() && p.tls_at[1] <= b.len(), "{p:?}");
        assert!(p.tls_at.iter().all(|&n| n <= MAX_PREAMBLE + 65_551), "{p:?}");
        assert!(p.client < 2);
    }
    for client in [0, 1] {
        let whole = search_unknown([a, b], client);
        if let Verdict::Tls(p) = &whole {
            assert!(p.tls_at[0] <= a.len() && p.tls_at[1] <= b.len(), "{p:?}");
            assert_eq!(p.client, client);
        }
        let (ha, hb) = ((a.len() / 2).max(1), (b.len() / 2).max(1));
        for (n, m) in [(ha, b.len()), (a.len(), hb), (ha, hb)] {
            if n > a.len() || m > b.len() {
                continue;
            }
            let p = search_unknown([&a[..n], &b[..m]], client);
            if matches!(p, Verdict::Tls(_)) {
                assert_eq!(p, whole, "unknown: prefixes {n}, {m}");
            }
        }
    }
    let hmac = cut % 65;
    let (mut full, mut part) = (Vec::new(), Vec::new());
    openvpn::unwrap(rest, hmac, &mut full);
    openvpn::unwrap(a, hmac, &mut part);
    assert!(full.starts_with(&part));
    let (mut full, mut part) = (Vec::new(), Vec::new());
    tds::unwrap(rest, &mut full);
    tds::unwrap(a, &mut part);
    assert!(full.starts_with(&part));
    // Prefixes of both directions (each with some bytes: a direction that
    // has not spoken yet cannot be told from one that never will): a
    // decision stays the same on the whole.
    let (ha, hb) = ((a.len() / 2).max(1), (b.len() / 2).max(1));
    for (n, m) in [(1usize, 1usize), (ha, b.len()), (a.len(), hb), (ha, hb)] {
        if n > a.len() || m > b.len() {
            continue;
        }
        let p = parse([&a[..n], &b[..m]]);
        if matches!(p, Verdict::Tls(_) | Verdict::NoTls(_) | Verdict::GaveUp(_)) {
            assert_eq!(p, whole, "prefixes {n}, {m}");
        }
    }
});
