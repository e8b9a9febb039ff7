//! Every shipped capture's events and non-zero counters, as reviewed
//! snapshots (`tests/snapshots/`): a change in behaviour shows up as a diff
//! to review (`cargo insta review`, or `INSTA_UPDATE=always cargo test` then
//! `git diff`), and a refactoring must leave them all unchanged.
//!
//! The run is `read --all` with VXLAN also on 8472 (as tests/offline.rs), each
//! capture on its own. Events are sorted (workers report in any order); the
//! build version and the two segment counters that depend on thread timing
//! are left out of the metrics.

use crate::common::*;

fn snapshot_of(file: &std::path::Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("m.prom");
    let out = tlscensus(&[
        "read",
        "--all",
        "--no-progress",
        "--vxlan-port",
        "4789",
        "--vxlan-port",
        "8472",
        "--events",
        "-",
        "--metrics-file",
        prom.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let mut events: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    events.sort();
    let metrics = std::fs::read_to_string(&prom).unwrap_or_default();
    let mut counters: Vec<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("tlscensus_build_info"))
        // How many segments the capture thread skips depends on how far
        // the workers lag it (never the results: see pipeline tests).
        .filter(|l| {
            !l.starts_with("tlscensus_settled_segments_total")
                && !l.starts_with("tlscensus_tcp_segments_total")
        })
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    counters.sort();
    let mut s = format!("status: {:?}\n\n# events\n", out.status.code());
    for e in events {
        s.push_str(&e);
        s.push('\n');
    }
    s.push_str("\n# counters (non-zero)\n");
    for c in counters {
        s.push_str(c);
        s.push('\n');
    }
    s
}

#[test]
fn every_shipped_capture_matches_its_snapshot() {
    let files = shipped_captures();
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots"));
    settings.set_omit_expression(true);
    settings.bind(|| {
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy().replace('.', "_");
            insta::assert_snapshot!(name, snapshot_of(f));
        }
    });
}
