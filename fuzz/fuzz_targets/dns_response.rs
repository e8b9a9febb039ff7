//! Any bytes as a DNS response (UDP payload, or DNS-over-TCP segment payload):
//! parsing never panics, and learning from what parses stays within the
//! store's bound and gives answers only for the times they are valid.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tlscensus::decode::dns::{messages, parse_response};
use tlscensus::targets::passive_dns::PassiveDns;
use tlscensus::targets::TargetSet;

static TARGETS: OnceLock<TargetSet> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let targets = TARGETS.get_or_init(TargetSet::defaults);
    let store = PassiveDns::new(8, 0, 86_400);
    let mut all = Vec::new();
    for tcp in [false, true] {
        messages(data, tcp, |m| all.extend(m.ok()));
    }
    let t = 1_000_000_000_000;
    for m in all {
        if let Ok(r) = parse_response(m) {
            assert!(r.answers.len() <= tlscensus::decode::dns::MAX_RECORDS);
            store.learn(&r, targets, t);
            assert!(store.len() <= 8);
            for a in &r.answers {
                assert!(a.owner.len() <= 255);
                if let tlscensus::decode::dns::Rdata::Addr(ip) = a.data {
                    // Nothing is valid before it was seen.
                    assert!(store.target_of(ip, t - 1).is_none());
                    let _ = store.target_of(ip, t);
                }
                let _ = store.alias_of(&a.owner, t);
            }
        }
    }
});
