//! Why a direction's stream start did not (yet) yield a handshake fact: the
//! small `Copy` outcome every TLS reader returns (record layer, opening,
//! certificate). "Need more bytes", "not TLS", "TLS but not a handshake
//! start" and "malformed" stay apart; each [`Malformed`] kind is a `kind`
//! label on the parse error counter.

use super::version::Version;

/// Why a stream start did not (yet) yield what its reader looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsError {
    /// Looks like TLS so far; more bytes are needed.
    NeedMore,
    /// A HelloRetryRequest selecting this version, then nothing whole yet:
    /// more bytes are needed, but if none come, the HRR is the server's answer.
    AfterRetry(Version),
    /// The first bytes are not a TLS (or SSLv2) record.
    NotTls,
    /// TLS records, but not the start of a handshake (capture began mid-flow).
    MidStream,
    /// Starts like TLS, then breaks a rule.
    Malformed(Malformed),
}

crate::label_set! {
    /// Kinds of malformed handshakes; each is a `kind` label on the parse error counter.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Malformed {
        RecordHeader = "record_header",
        RecordTooLong = "record_too_long",
        HandshakeTooLarge = "handshake_too_large",
        UnexpectedMessage = "unexpected_message",
        ClientHello = "client_hello",
        ServerHello = "server_hello",
        Alert = "alert",
        Sslv2 = "sslv2",
        /// The server's Certificate message or its first certificate.
        Certificate = "certificate",
    }
}
