//! Helpers for end-to-end tests: run the real binary on the shipped captures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")
}

pub fn capture(name: &str) -> PathBuf {
    captures().join(name)
}

pub fn tlscensus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tlscensus"))
        .args(args)
        .output()
        .expect("run tlscensus")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `read --events -` (plus `extra`) on files; returns the events, sorted.
pub fn events(files: &[&Path], extra: &[&str]) -> Vec<Value> {
    let mut args: Vec<String> = vec!["read".into(), "--events".into(), "-".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(files.iter().map(|p| p.display().to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tlscensus(&argv);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "status {:?}\nstderr: {}",
        out.status,
        text(&out.stderr)
    );
    let mut evs: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("event line is JSON"))
        .collect();
    evs.sort_by_key(|e| {
        (
            e["ts"].as_str().unwrap_or("").to_string(),
            e["src_port"].as_u64(),
        )
    });
    evs
}

/// Events of one capture file with `--all`.
pub fn events_all(name: &str) -> Vec<Value> {
    events(&[&capture(name)], &["--all"])
}
