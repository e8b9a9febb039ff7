//! Helpers for end-to-end tests: run the real binary on the shipped captures.
#![allow(dead_code)]

pub mod craft;

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

/// `tlscensus read EXTRA FILES...` with a metrics file; its text.
pub fn metrics_after_read(files: &[&str], extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("m.prom");
    let mut argv = vec!["read", "--metrics-file", prom.to_str().unwrap()];
    argv.extend(extra);
    let paths: Vec<String> = files
        .iter()
        .map(|f| capture(f).display().to_string())
        .collect();
    argv.extend(paths.iter().map(String::as_str));
    let out = tlscensus(&argv);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::read_to_string(&prom).unwrap()
}

/// `line` is a line of the metrics text `m`.
pub fn has(m: &str, line: &str) {
    assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
}

/// The value of one series line (exact labels) in the metrics text `m`.
pub fn value(m: &str, series: &str) -> Option<f64> {
    m.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Captures replayed apart from the others in the live tests: TLS after a
/// preamble (captures/make-preamble-captures.sh) and the client stacks
/// (fingerprints/make-catalogue.sh), made on other days than the others and
/// with ports in the range the others' servers use.
pub fn made_apart(file: &Path) -> bool {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    [
        "squid-",
        "tinyproxy-",
        "dante-",
        "postgres-",
        "mariadb-",
        "starttls-",
        "proxy-protocol-",
        "tds-",
        "ssh-",
        "client-stacks",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// True when the tests run as root (effective uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
    })
}
