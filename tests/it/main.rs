//! The integration tests, through the binary: one test binary (each file a
//! module) so the crate is linked once, with the helpers they share in
//! `common/`. Files: `offline` and `snapshots` (every shipped capture),
//! `tshark` (against Wireshark), `hardening` (floods and hostile traffic),
//! and one per feature. The live tests (`tests/live.rs`: root, network
//! namespaces and veth pairs) are a binary of their own, sharing `common/`:
//! binaries run one after the other, so a live sensor never shares the
//! machine's two cores with the CPU-heavy tests here.

mod common;
mod config;
mod fingerprints;
mod formats;
mod hardening;
mod layouts;
mod monitoring;
mod names;
mod offline;
mod policy;
mod preamble;
mod reference;
mod services;
mod snapshots;
mod syslog;
mod targets;
mod tshark;
