//! tlscensus: a passive census of the TLS versions hosts use, aimed at finding the
//! clients that still speak TLS 1.0/1.1 to Azure Blob Storage.
//!
//! ```text
//!  capture thread                          workers (N, each owns its flows)
//!  ──────────────                          ───────────────────────────────
//!  PacketSource ─ Frame ─► decode ─► frag ─► FlowKey hash ─┬─► FlowTable ─► StreamStart ─► tls::extract
//!  (pcap file / live)      link/IP/TCP  join    batches over │      │               (bounded)      │
//!                                               bounded      │      └─ evictions, bound counters   ▼
//!                                               channels     └─► ...                     HandshakeSummary
//!                                                                                              │
//!                     shared: Inventory (DashMap) ◄───────────────────────────────────────────┤
//!                             Metrics (prometheus) ◄──────────────────────────────────────────┤
//!                             event log (NDJSON writer thread) ◄──────────────────────────────┘
//! ```
//!
//! Each stage borrows its bytes and returns a typed outcome; nothing on the packet
//! path panics or allocates per packet in steady state. Only the inventory and
//! the counters are shared between threads.
#![forbid(unsafe_code)]

pub mod capture;
pub mod cli;
pub mod config;
pub mod decode;
pub mod dns;
pub mod error;
pub mod events;
pub mod exporter;
pub mod flow;
pub mod inventory;
pub mod live;
pub mod metrics;
pub mod pipeline;
pub mod prefixes;
pub mod privilege;
pub mod read;
pub mod report;
pub mod target;
pub mod tls;
