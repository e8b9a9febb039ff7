//! TLS: versions, stream-start extraction and owned handshake summaries.

pub mod certificate;
pub mod extract;
pub mod summary;
pub mod version;

pub use certificate::parse_server_certificate;
pub use extract::{Opening, TlsError, parse_opening};
pub use summary::{ClientFacts, HandshakeSummary, Outcome, ServerAnswer, ServerCertificate};
pub use version::Version;
