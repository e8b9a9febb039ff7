//! Owned handshake facts: what one direction's stream start told us, and the
//! per-flow summary that crosses from a worker to the inventory, metrics and events.
//!
//! Input: borrowed parse results from [`super::extract`]. Output: small owned
//! values. Invariant: the outcome, effective version and legacy decision of a flow
//! are computed here and nowhere else.

use std::net::IpAddr;
use std::sync::Arc;

use super::fingerprint::{Fingerprint, Held, RawFingerprint};
use super::version::{Version, above_offer, client_max_version, is_below};
use crate::preamble::Preamble;

/// What the server's leaf certificate says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCertificate {
    /// Subject common names, then subjectAltName dNSNames, as sent (wildcards
    /// included), each followed by a NUL (which no DNS name holds): one
    /// allocation for a certificate of many names.
    names: String,
}

impl ServerCertificate {
    /// From names, each followed by a NUL.
    pub(super) fn from_nul_separated(names: String) -> ServerCertificate {
        ServerCertificate { names }
    }

    /// The names, in certificate order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.split_terminator('\0')
    }
}

/// What a ClientHello told us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFacts {
    /// `client_version` / `legacy_version` of the hello itself.
    pub hello_version: Version,
    /// Versions listed in supported_versions (GREASE included, as sent), if present.
    pub supported_versions: Option<Vec<Version>>,
    /// server_name (host_name entry), as sent, at most 255 bytes, lossy UTF-8.
    pub sni: Option<String>,
    /// The hello came in the SSLv2-compatible record format.
    pub sslv2_format: bool,
    /// server_name or supported_versions appeared more than once; the first
    /// occurrence is kept (what a server reads before it aborts).
    pub duplicate_extension: bool,
    /// The capture cut the hello (snap length): only its own version field
    /// is known; what it offers beyond that is unknown.
    pub cut: bool,
    /// JA4 and JA3 of the hello (not for cut hellos).
    pub fingerprint: Option<Fingerprint>,
    /// JA4_r and the JA3 string, with `--raw-fingerprints` (budgeted).
    pub raw_fingerprint: Option<Arc<RawFingerprint>>,
    /// The cipher list and session ID, for the event layouts that show
    /// them (budgeted: see [`Held`]).
    pub detail: Option<Arc<ClientDetail>>,
    /// Each configured server policy's verdict on the hello (none judged
    /// for a hello not fingerprinted).
    pub verdicts: crate::policy::Verdicts,
}

/// A session ID as sent (at most 32 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionId {
    len: u8,
    bytes: [u8; 32],
}

impl SessionId {
    /// `None` for a slice over 32 bytes (the parsers refuse those).
    pub fn of(id: &[u8]) -> Option<SessionId> {
        let mut bytes = [0; 32];
        bytes.get_mut(..id.len())?.copy_from_slice(id);
        Some(SessionId {
            len: id.len() as u8,
            bytes,
        })
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(32)]
    }
}

/// What a ClientHello offered beyond what the census reads: kept only for
/// the event layouts that show it.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientDetail {
    /// The cipher suites, in wire order (GREASE values included).
    pub ciphers: Box<[u16]>,
    pub session_id: SessionId,
    pub held: Held,
}

/// What a ServerHello chose beyond the version: kept only for the event
/// layouts that show it.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerDetail {
    /// The ServerHello's own version field (`legacy_version`).
    pub hello_version: u16,
    /// supported_versions' selected version, as sent (a TLS 1.3 draft
    /// keeps its number).
    pub selected: Option<u16>,
    pub cipher: u16,
    /// key_share's group (TLS 1.3).
    pub group: Option<u16>,
    /// The protocol application_layer_protocol_negotiation selected (lossy
    /// UTF-8).
    pub alpn: Option<Box<str>>,
    /// pre_shared_key was accepted (TLS 1.3 resumption).
    pub psk: bool,
    pub session_id: SessionId,
    pub held: Held,
}

impl ClientFacts {
    /// Highest version offered (GREASE ignored, drafts as TLS 1.3); not
    /// known when the capture cut the hello.
    pub fn max_offered(&self) -> Option<Version> {
        (!self.cut).then(|| self.max_version())
    }

    /// Highest version offered (GREASE ignored, drafts as TLS 1.3).
    pub fn max_version(&self) -> Version {
        client_max_version(self.hello_version, self.supported_versions.as_deref())
    }
}

/// How the server answered the ClientHello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerAnswer {
    /// A ServerHello (not a HelloRetryRequest) with the negotiated version.
    Hello { version: Version, retried: bool },
    /// An alert instead of a ServerHello.
    Alert { level: u8, description: u8 },
    /// A ServerHello the capture cut (snap length) before its version could
    /// be trusted (TLS 1.3 says so only in an extension).
    CutHello,
}

crate::label_set! {
    /// The three outcomes of a handshake start.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Outcome {
        Negotiated = "negotiated",
        Rejected = "rejected",
        Unanswered = "unanswered",
    }
}

/// What passive DNS said about a flow's server when its ClientHello was
/// read, so that DNS seen later (answers, evictions, purges while the flow
/// waits to be reported) cannot change the flow's match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsAtHello {
    /// The SNI was an alias of this target name.
    Alias(Arc<str>),
    /// The server's address was an answer for this target name.
    Address(Arc<str>),
    /// Passive DNS knew nothing that leads to a target.
    Nothing,
}

/// Looks up passive DNS for a ClientHello: (server address, SNI, time).
pub type DnsLookup = std::rc::Rc<dyn Fn(IpAddr, Option<&str>, u64) -> DnsAtHello>;

/// One TLS flow as the census sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeSummary {
    /// Capture time of the ClientHello (or of the server's answer when no
    /// ClientHello was seen), nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub client_ip: IpAddr,
    pub client_port: u16,
    pub server_ip: IpAddr,
    pub server_port: u16,
    pub client: Option<ClientFacts>,
    pub answer: Option<ServerAnswer>,
    /// The server's leaf certificate, read only for flows without SNI that
    /// negotiated TLS 1.2 or older (see `flow::table`).
    pub certificate: Option<Arc<ServerCertificate>>,
    /// Passive DNS at the ClientHello, when the table was given a lookup.
    pub dns: Option<DnsAtHello>,
    /// What preceded TLS in the stream (a proxy's CONNECT, STARTTLS, ...).
    pub preamble: Option<Box<Preamble>>,
    /// The ServerHello's choices, for the event layouts that show them.
    pub server: Option<Arc<ServerDetail>>,
}

impl HandshakeSummary {
    pub fn outcome(&self) -> Outcome {
        match self.answer {
            Some(ServerAnswer::Hello { .. } | ServerAnswer::CutHello) => Outcome::Negotiated,
            Some(ServerAnswer::Alert { .. }) => Outcome::Rejected,
            None => Outcome::Unanswered,
        }
    }

    pub fn negotiated(&self) -> Option<Version> {
        match self.answer {
            Some(ServerAnswer::Hello { version, .. }) => Some(version),
            _ => None,
        }
    }

    /// The configured server policies' verdicts on the flow's hello (none
    /// judged without a whole hello).
    pub fn verdicts(&self) -> crate::policy::Verdicts {
        self.client.as_ref().map(|c| c.verdicts).unwrap_or_default()
    }

    pub fn client_max(&self) -> Option<Version> {
        self.client.as_ref().and_then(ClientFacts::max_offered)
    }

    /// The capture cut this handshake: some of its facts are unknown.
    pub fn incomplete(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.cut)
            || matches!(self.answer, Some(ServerAnswer::CutHello))
    }

    /// The server chose a version above anything the client offered (a TLS
    /// 1.0-only client "answered" with TLS 1.3): a broken or spoofed reply,
    /// counted as an anomaly; it must not hide a legacy client.
    pub fn version_not_offered(&self) -> bool {
        match (self.negotiated(), self.client_max()) {
            (Some(n), Some(c)) => above_offer(n, c),
            _ => false,
        }
    }

    /// The version a census counts the flow under: negotiated when known, else
    /// the highest the client offered; the client's highest also when the
    /// server claims a version the client never offered.
    pub fn effective_version(&self) -> Option<Version> {
        let offered = self.client_max();
        match (self.negotiated(), offered) {
            (Some(n), Some(c)) if above_offer(n, c) => Some(c),
            (Some(n), _) => Some(n),
            (None, c) => c,
        }
    }

    /// Legacy: negotiated below `min`, or (no negotiation) the client offered
    /// nothing at or above `min`.
    pub fn is_legacy(&self, min: Version) -> bool {
        legacy_at(self.effective_version(), min)
    }

    /// The session was resumed: in TLS 1.3 the server accepted a
    /// pre-shared key; before, it echoed the client's non-empty session
    /// ID. `None` when the details were not kept.
    pub fn resumed(&self) -> Option<bool> {
        let server = self.server.as_deref()?;
        if self.negotiated() == Some(Version::TLS13) {
            return Some(server.psk);
        }
        let client = self.client.as_ref()?.detail.as_deref()?;
        let id = client.session_id.as_slice();
        Some(!id.is_empty() && id == server.session_id.as_slice())
    }

    /// The SNI (host_name), as sent.
    pub fn sni(&self) -> Option<&str> {
        self.client.as_ref().and_then(|c| c.sni.as_deref())
    }

    pub fn alert_name(&self) -> Option<String> {
        match self.answer {
            Some(ServerAnswer::Alert { description, .. }) => Some(alert_name(description)),
            _ => None,
        }
    }
}

/// [`HandshakeSummary::is_legacy`] of a flow whose effective version is
/// already known.
pub fn legacy_at(effective: Option<Version>, min: Version) -> bool {
    effective.is_some_and(|v| is_below(v, min))
}

/// RFC 8446 / RFC 5246 alert description names; unknown values as `0x??`.
pub fn alert_name(description: u8) -> String {
    match known_alert(description) {
        Some(name) => name.to_string(),
        None => format!("0x{description:02x}"),
    }
}

/// The RFC 8446 / RFC 5246 name of an alert description, if it has one.
pub fn known_alert(description: u8) -> Option<&'static str> {
    Some(match description {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return None,
    })
}

#[cfg(test)]
impl HandshakeSummary {
    /// A client hello of `version` from `client` to `server`:443 at time 0,
    /// unanswered, with `sni` and no other extension facts (for tests).
    pub fn hello_for_test(
        client: impl Into<IpAddr>,
        server: impl Into<IpAddr>,
        version: u16,
        sni: Option<&str>,
    ) -> HandshakeSummary {
        HandshakeSummary {
            ts_ns: 0,
            client_ip: client.into(),
            client_port: 40000,
            server_ip: server.into(),
            server_port: 443,
            client: Some(ClientFacts {
                hello_version: Version(version),
                supported_versions: None,
                sni: sni.map(str::to_string),
                sslv2_format: false,
                duplicate_extension: false,
                cut: false,
                fingerprint: None,
                raw_fingerprint: None,
                detail: None,
                verdicts: Default::default(),
            }),
            answer: None,
            certificate: None,
            dns: None,
            preamble: None,
            server: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn summary(client: Option<ClientFacts>, answer: Option<ServerAnswer>) -> HandshakeSummary {
        HandshakeSummary {
            ts_ns: 0,
            client_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            client_port: 50000,
            server_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            server_port: 443,
            client,
            answer,
            certificate: None,
            dns: None,
            preamble: None,
            server: None,
        }
    }

    fn ch(v: u16, list: Option<&[u16]>) -> ClientFacts {
        let hello = HandshakeSummary::hello_for_test([10, 0, 0, 1], [10, 0, 0, 2], v, None);
        ClientFacts {
            supported_versions: list.map(|l| l.iter().map(|&x| Version(x)).collect()),
            ..hello.client.expect("a hello has client facts")
        }
    }

    #[test]
    fn outcome_and_legacy_table() {
        let min = Version::TLS12;
        let hello = |v| {
            Some(ServerAnswer::Hello {
                version: Version(v),
                retried: false,
            })
        };
        let alert = Some(ServerAnswer::Alert {
            level: 2,
            description: 70,
        });
        // (client, answer, outcome, effective, legacy)
        let cases = [
            (
                Some(ch(0x0301, None)),
                alert,
                Outcome::Rejected,
                Some(0x0301),
                true,
            ),
            (
                Some(ch(0x0303, None)),
                hello(0x0303),
                Outcome::Negotiated,
                Some(0x0303),
                false,
            ),
            (
                Some(ch(0x0303, None)),
                hello(0x0301),
                Outcome::Negotiated,
                Some(0x0301),
                true,
            ),
            (
                Some(ch(0x0303, Some(&[0x0304, 0x0303]))),
                None,
                Outcome::Unanswered,
                Some(0x0304),
                false,
            ),
            (
                Some(ch(0x0302, None)),
                None,
                Outcome::Unanswered,
                Some(0x0302),
                true,
            ),
            (None, hello(0x0302), Outcome::Negotiated, Some(0x0302), true),
            (None, alert, Outcome::Rejected, None, false),
            // a modern client downgraded by the server is legacy
            (
                Some(ch(0x0303, Some(&[0x0304]))),
                hello(0x0302),
                Outcome::Negotiated,
                Some(0x0302),
                true,
            ),
            // a server "choosing" TLS 1.3 for a TLS 1.0-only client: stays legacy
            (
                Some(ch(0x0301, None)),
                hello(0x0304),
                Outcome::Negotiated,
                Some(0x0301),
                true,
            ),
            (
                Some(ch(0x0303, Some(&[0x0303, 0x0302]))),
                hello(0x0304),
                Outcome::Negotiated,
                Some(0x0303),
                false,
            ),
        ];
        for (i, (c, a, outcome, eff, legacy)) in cases.into_iter().enumerate() {
            let s = summary(c, a);
            assert_eq!(s.outcome(), outcome, "case {i}");
            assert_eq!(s.effective_version(), eff.map(Version), "case {i}");
            assert_eq!(s.is_legacy(min), legacy, "case {i}");
        }
    }

    #[test]
    fn alert_names() {
        assert_eq!(alert_name(70), "protocol_version");
        assert_eq!(alert_name(40), "handshake_failure");
        assert_eq!(alert_name(200), "0xc8");
    }
}
