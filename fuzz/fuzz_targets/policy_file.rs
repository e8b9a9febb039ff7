//! Any text as a policy file (TOML, or JSON when it starts with `{`): it is
//! refused with errors that name a line, or read into a policy that, written
//! back as a file, reads again as the same policy.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tlscensus::policy::file::{parse, to_toml};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse("f", text) {
        Err(e) => assert!(e.lines().all(|l| l.starts_with("f:")), "{e}"),
        Ok(p) => {
            let again = parse("g", &to_toml(&p)).expect("a written policy reads back");
            let ids = |q: &tlscensus::policy::ServerPolicy| {
                let mut v: Vec<(u16, u8)> = q.suites.iter().map(|s| (s.id, s.versions)).collect();
                v.sort_unstable();
                v
            };
            assert_eq!(ids(&again), ids(&p));
            assert_eq!((again.versions, &again.groups, &again.sigalgs), (p.versions, &p.groups, &p.sigalgs));
            assert_eq!(again.require, p.require);
        }
    }
});
