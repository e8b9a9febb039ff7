//! End-to-end tests of `tlscensus live` on real interfaces: network namespaces
//! joined by veth pairs, real OpenSSL clients and servers, tcpreplay of the
//! shipped captures, and a real Prometheus server scraping the exporter.
//!
//! They need root (namespaces, capture, setuid) and the tools listed in
//! [`harness::TOOLS`]. Outside CI a missing prerequisite skips a test with a message;
//! with `CI` set it fails the test, so CI can never pass by skipping.

#[path = "../it/common/mod.rs"]
mod common;

mod census;
mod fleet;
mod harness;
mod mirror;
mod operation;
mod prometheus;
mod replays;
