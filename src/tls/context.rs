//! What the TLS sessions of one flow table share ([`TlsCtx`]): scratch
//! space for messages that span records, the certificate cache, the
//! passive DNS lookup, the fingerprinter, and the counters the worker
//! flushes ([`SessionStats`]).

use crate::label::ByLabel;
use crate::preamble::{Kind, PreambleResult};

use super::error::Malformed;

use super::certificate::CertificateCache;
use super::fingerprint::{DETAIL_BUDGET, Fingerprinter, RAW_BUDGET};
use super::summary::DnsLookup;

/// Counts of what the sessions of one table saw; the worker flushes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub non_tls: u64,
    pub midstream: u64,
    pub incomplete: u64,
    pub conflicting_roles: u64,
    pub server_not_tls: u64,
    /// Handshake directions the capture cut (snap length) before their
    /// opening could be read whole.
    pub cut_handshakes: u64,
    /// Flows that did not open with TLS and whose preamble was read, by
    /// kind (`Kind::ALL` order) and result (`PreambleResult::ALL` order).
    pub preambles: ByLabel<
        Kind,
        ByLabel<PreambleResult, u64, { PreambleResult::ALL.len() }>,
        { Kind::ALL.len() },
    >,
    pub malformed: ByLabel<Malformed, u64, { Malformed::ALL.len() }>,
    /// Server certificates looked for (flows without SNI, TLS ≤ 1.2), by
    /// result: names read, no certificate sent, not readable (malformed, over
    /// the stream cap or buffer budget, or the flow ended first).
    pub certificates: CertificateStats,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateStats {
    pub names: u64,
    pub none: u64,
    pub failed: u64,
}

crate::label_set! {
    /// `result` values of `tlscensus_server_certificates_total`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum CertificateResult {
        Names = "names",
        None = "none",
        Failed = "failed",
    }
}

impl CertificateStats {
    pub fn count(&self, r: CertificateResult) -> u64 {
        match r {
            CertificateResult::Names => self.names,
            CertificateResult::None => self.none,
            CertificateResult::Failed => self.failed,
        }
    }
}

crate::label_set! {
    /// `kind` values of the TLS parse error counter besides [`Malformed`]
    /// kinds: streams that could not be read as TLS to the end.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ParseProblem {
        Incomplete = "incomplete",
        ConflictingRoles = "conflicting_roles",
        ServerNotTls = "server_not_tls",
    }
}

impl SessionStats {
    pub fn problems(&self, p: ParseProblem) -> u64 {
        match p {
            ParseProblem::Incomplete => self.incomplete,
            ParseProblem::ConflictingRoles => self.conflicting_roles,
            ParseProblem::ServerNotTls => self.server_not_tls,
        }
    }
}

impl SessionStats {
    pub(super) fn count_preamble(&mut self, kind: Kind, result: PreambleResult) {
        self.preambles[kind][result] += 1;
    }

    pub(super) fn count_malformed(&mut self, m: Malformed) {
        self.malformed[m] += 1;
    }
}

/// What the sessions of one table share: scratch space for messages that
/// span records, the certificate cache, the passive DNS lookup and the
/// counters.
pub struct TlsCtx {
    pub(super) scratch: Vec<u8>,
    /// A framed direction's handshake bytes, rebuilt per segment.
    pub(super) unwrapped: Vec<u8>,
    pub(super) certificates: CertificateCache,
    /// Largest handshake message (the stream cap).
    pub(super) max_message: usize,
    /// Asked when a ClientHello is read (see [`DnsAtHello`]).
    pub(super) dns_lookup: Option<DnsLookup>,
    /// Each ClientHello's JA4 and JA3 (and raw strings when asked for).
    pub fingerprints: Fingerprinter,
    pub stats: SessionStats,
}

impl TlsCtx {
    pub fn new(max_message: usize) -> Self {
        TlsCtx {
            scratch: Vec::new(),
            unwrapped: Vec::new(),
            certificates: CertificateCache::default(),
            max_message,
            dns_lookup: None,
            fingerprints: Fingerprinter::default(),
            stats: SessionStats::default(),
        }
    }

    /// Which fingerprints each ClientHello gets beside JA4 (always, for
    /// the inventory): JA3 (`ja3`, for the events), and the raw strings
    /// (JA4_r, the JA3 string) within [`RAW_BUDGET`] bytes for the table.
    pub fn with_fingerprints(mut self, ja3: bool, raw: bool) -> Self {
        self.fingerprints = match (ja3, raw) {
            (_, true) => Fingerprinter::with_raw(RAW_BUDGET),
            (true, false) => Fingerprinter::with_ja3(),
            (false, false) => Fingerprinter::ja4_only(),
        };
        self
    }

    /// Keeps each handshake's details for the events (the cipher lists,
    /// session IDs and the server's choices), within [`DETAIL_BUDGET`]
    /// bytes for the table.
    pub fn with_details(mut self) -> Self {
        self.fingerprints = std::mem::take(&mut self.fingerprints).with_details(DETAIL_BUDGET);
        self
    }

    /// Asks `lookup` about the server when a flow's ClientHello is read, and
    /// reports the answer with the flow.
    pub fn with_dns_lookup(mut self, lookup: DnsLookup) -> Self {
        self.dns_lookup = Some(lookup);
        self
    }
}
