//! Any bytes as a datagram of a service that names hosts (DHCPv4, DHCPv6,
//! NBNS, mDNS, LLMNR, Kerberos over UDP or TCP) or a DNS response with PTR
//! answers: the parsers never panic, the store never holds more addresses
//! than its bound, and every name it gives is a clean name of at most 253
//! bytes. The first byte picks the service; then datagrams, each after a
//! 2-byte length (several per input exercise DHCP's request-then-ACK
//! pairing and the store's bounds).
#![no_main]
use std::net::IpAddr;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tlscensus::decode::{NameDatagram, NamePort};
use tlscensus::hosts::learn::NameLearner;
use tlscensus::hosts::names::{HostNames, MAX_NAME, NameSettings};
use tlscensus::decode::dns::parse_response;

const KINDS: [NamePort; 6] = [
    NamePort::Dhcp4,
    NamePort::Dhcp6,
    NamePort::Nbns,
    NamePort::Mdns,
    NamePort::Llmnr,
    NamePort::Kerberos,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let settings = NameSettings {
        max_addresses: 4,
        ..NameSettings::default()
    };
    let names = Arc::new(HostNames::new(&settings));
    let mut learner = NameLearner::new(Arc::clone(&names));
    let src = IpAddr::from([10, 0, 0, 1]);
    let mut ts = 1_000_000_000u64;
    let mut rest = rest;
    while let [hi, lo, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (part, after) = tail.split_at(n);
        rest = after;
        ts += 1_000_000_000;
        let i = usize::from(pick) % (KINDS.len() + 1);
        if i == KINDS.len() {
            if let Ok(r) = parse_response(part) {
                learner.dns_ptr(&r, ts);
            }
            continue;
        }
        let d = NameDatagram {
            kind: KINDS[i],
            src,
            dst: IpAddr::from([255, 255, 255, 255]),
            payload: part,
            tcp: pick & 0x80 != 0,
        };
        learner.learn(&d, ts);
    }
    assert!(names.len() <= 4);
    for last in 0..=255u8 {
        for ip in [IpAddr::from([10, 0, 0, last]), IpAddr::from([192, 0, 2, last])] {
            if let Some((name, _)) = names.lookup(ip, ts) {
                assert!(!name.is_empty() && name.len() <= MAX_NAME, "{name:?}");
                assert!(
                    name.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b"-_.?".contains(&b)),
                    "{name:?}"
                );
            }
        }
    }
});
