//! TLS: versions ([`version`]), what a direction's stream start opened with
//! ([`extract`]), the server's clear-text leaf certificate ([`certificate`]),
//! and the owned per-flow summaries that leave a worker ([`summary`]).

pub mod certificate;
pub mod extract;
pub mod record;
pub mod session;
pub mod summary;
pub mod version;

pub use certificate::parse_server_certificate;
pub use extract::{Opening, TlsError, parse_opening};
pub use summary::{ClientFacts, HandshakeSummary, Outcome, ServerAnswer, ServerCertificate};
pub use version::Version;
