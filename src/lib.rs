//! tlscensus: a passive census of the TLS versions hosts use, aimed at finding the
//! clients that still speak TLS 1.0/1.1 to Azure Blob Storage.
//!
//! ```text
//!  capture thread (run::dispatch)                 workers (run::worker; N, each owns its flows)
//!  ──────────────────────────────                 ─────────────────────────────────────────────
//!  capture::PacketSource ─ Frame ─► decode ─► frag ─► FlowKey hash ─┬─► flow::FlowTable<TlsSession>
//!  (files) or capture::live   link/IP/tunnels/TCP join   │ batches,   │   TCP only ─► StreamStart (bounded)
//!                                                        │ bounded    │        │ each direction's stream start
//!  DNS responses (parsed here) ── in every batch ────────┘ channels   │        ▼
//!                                                                     │   tls::session (flow::Session)
//!  settled flows skipped ◄── flow::SettledSet ◄── marked by workers ──┤
//!  (live: and in the kernel ◄── capture::skip ◄── marked by workers ──┤)   tls::record ─► extract, certificate
//!                                                                     │        │
//!                                                                     │        ▼
//!                                                                     │   HandshakeSummary (+ DNS at hello,
//!                                                                     │    per-worker targets::passive_dns)
//!                                                                     │        │
//!                                                                     │        ▼ targets::Matcher (rules)
//!  shared:  inventory::Inventory ◄──────────────────────────────────────────────┤
//!           metrics::Metrics (/metrics via exporter::Page) ◄────────────────────┤
//!           events::EventLog (queue → one writer thread) ◄──────────────────────┘
//! ```
//!
//! The flow table tracks TCP and knows no protocol: it is generic over a
//! `flow::Session`, one per flow, which reads each direction's stream start
//! as it grows and says when the flow's facts are complete. The TLS session
//! reads through one incremental record layer (`tls::record`: stream bytes →
//! records → handshake messages), used by the opening and the server
//! certificate alike and keeping its position, so no byte is parsed twice.
//!
//! Each stage borrows its bytes and returns a typed outcome; nothing on the packet
//! path panics or allocates per packet in steady state. Shared between threads,
//! each bounded and with one writer per entry:
//! - the inventory (`inventory::Inventory`, `--max-hosts`) and the metrics
//!   (`metrics::Metrics`; the per-source legacy series capped by
//!   `--max-legacy-sources`, quiet sources aged out in live mode). The
//!   inventory, the destinations, the legacy sources and passive host names
//!   are each a `store::Shared` (a sharded map whose admissions to a full
//!   store take one mutex), which keeps hosts a server answered and hosts
//!   that keep making flows over one-shot newcomers (`store`). The hosts'
//!   server names are held once each in a `store::Pool`
//!   (`--max-server-name-bytes`): any worker adds a name a host meets for
//!   the first time, and a name no host holds any more makes room again;
//! - the settled-flow set (`flow::SettledSet`): workers mark, the capture
//!   threads skip those flows' segments (atomic slots: any number of readers);
//! - live on Ethernet, the kernel skip (`capture::skip::KernelSkip`,
//!   `--kernel-skip-flows`): its eBPF maps of settled flows, written by the
//!   workers (each through its own handle on the map, once per settled
//!   flow) and by the socket
//!   filter (control segments), read by the socket filter, which drops those
//!   flows' data segments before the capture ring;
//! - the event queue (`events::EventLog`, at most 4,096 events, in batches of
//!   up to 64): workers send, one writer thread writes them in the chosen
//!   layout to a file, standard output or a syslog receiver; in live mode a
//!   full queue drops events, never packets; the handshake details the
//!   richer layouts show are held within a budget per worker (4 MiB);
//! - the exporter's page (`exporter::Page`): rendered by one scrape, shared by the
//!   others for a second (so are the `/inventory` views);
//! - passive host names (`hosts::names::HostNames`, `--max-host-names`): the
//!   capture threads' `hosts::learn::NameLearner`s write (DHCP, DHCPv6, NBNS,
//!   mDNS, LLMNR, DNS PTR, Kerberos; with `live --capture-threads N`, N of
//!   them, each address's packets reaching one), and with `--resolve` the resolver thread
//!   (`hosts::resolve`, fed by the workers through a bounded queue they never
//!   wait on); workers, reports and the `tlscensus_host_info` collector read;
//! - mirror health (`mirror::MirrorHealth`): counters per interface, and
//!   4,096 client blocks with their one-way and two-way flow counts behind one
//!   mutex, which each worker takes once per batch in which flows left its
//!   table (`flow::mirror` tallies them there) and each scrape reads;
//! - per-destination readiness (`inventory::Destinations`, 16,384
//!   destinations): workers write, reports, the readiness collector and the
//!   `--state` thread (`state`) read;
//! - the server policies (`policy::PolicySet`, `--policy`, at most 8): read
//!   once at start and never changed (a reload keeps them: verdicts are by
//!   position); each worker's fingerprinter judges every fingerprinted hello
//!   by them in its one walk over the hello, and the verdicts (4 bits a
//!   policy) travel with the flow's facts to the inventory (a bit per failed
//!   policy on hosts, fingerprints and destinations), the counters and the
//!   events;
//! - the service table (`targets::services::table()`): the built-in rows and
//!   a `--services-file`'s, set once before any thread starts;
//! - `live --capture-threads N`: each interface's fanout group
//!   (`capture::fanout::FanoutGroup`, a mutex taken only when a handle opens);
//!   every capture thread has its own dispatcher and sends to the same
//!   workers, so a flow meets its worker whichever thread read it.
//!
//! Passive DNS is not shared: the capture thread parses DNS responses
//! (`decode::dns`) and sends each to every worker in its batch, between the
//! same segments as on the wire; each worker keeps its own store
//! (`targets::passive_dns`, a `store::Local` its thread owns, no locks;
//! `--max-dns-entries`), so a flow is judged by exactly the DNS seen before
//! its ClientHello.
//!
//! One segment type travels from the capture thread to the flow table
//! (`flow::Segment`), and one function takes a frame to what it holds
//! (`run::dispatch::frame_items`: segments, DNS payloads, naming datagrams).
//! The worker is chosen by a hash keyed per process (`flow::key`). Closed
//! label sets (versions, outcomes, bounds, reasons) are declared with one
//! macro (`label`), and counter arrays are indexed by them.
#![forbid(unsafe_code)]

pub mod capture;
pub mod cli;
pub mod config;
pub mod decode;
pub mod error;
pub mod events;
pub mod exporter;
pub mod flow;
pub mod hosts;
pub mod inventory;
pub mod label;
pub mod manual;
pub mod metrics;
pub mod mirror;
pub mod order;
pub mod policy;
pub mod preamble;
pub mod privilege;
pub mod report;
pub mod run;
pub mod state;
pub mod store;
pub mod sync;
pub mod targets;
pub mod text;
pub mod tls;
