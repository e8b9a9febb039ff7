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

/// Kinds of malformed handshakes; each is a `kind` label on the parse error counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    RecordHeader,
    RecordTooLong,
    HandshakeTooLarge,
    UnexpectedMessage,
    ClientHello,
    ServerHello,
    Alert,
    Sslv2,
    /// The server's Certificate message or its first certificate.
    Certificate,
}

impl Malformed {
    pub const ALL: [Malformed; 9] = [
        Malformed::RecordHeader,
        Malformed::RecordTooLong,
        Malformed::HandshakeTooLarge,
        Malformed::UnexpectedMessage,
        Malformed::ClientHello,
        Malformed::ServerHello,
        Malformed::Alert,
        Malformed::Sslv2,
        Malformed::Certificate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::RecordHeader => "record_header",
            Malformed::RecordTooLong => "record_too_long",
            Malformed::HandshakeTooLarge => "handshake_too_large",
            Malformed::UnexpectedMessage => "unexpected_message",
            Malformed::ClientHello => "client_hello",
            Malformed::ServerHello => "server_hello",
            Malformed::Alert => "alert",
            Malformed::Sslv2 => "sslv2",
            Malformed::Certificate => "certificate",
        }
    }
}
