//! TLS: the incremental record layer ([`record`]: stream bytes → records →
//! handshake messages), what a direction's stream start opened with
//! ([`extract`]), the server's clear-text leaf certificate ([`certificate`]),
//! the per-flow session the flow table drives ([`session`]), versions
//! ([`version`]), parse outcomes ([`error`]) and the owned per-flow summaries
//! that leave a worker ([`summary`]).

pub mod certificate;
pub mod context;
pub mod craft;
pub mod error;
pub mod extract;
pub mod fingerprint;
pub mod hello;
pub mod names;
pub mod record;
pub mod session;
pub mod summary;
pub mod version;

pub use certificate::parse_server_certificate;
pub use extract::{Opening, TlsError, parse_opening};
pub use summary::{ClientFacts, HandshakeSummary, Outcome, ServerAnswer, ServerCertificate};
pub use version::Version;
