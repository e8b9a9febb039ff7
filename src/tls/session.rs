//! The TLS side of one flow: what each direction's stream start opened with,
//! the server-certificate policy, and when the flow's facts are complete.
//!
//! Input: from the flow table, each direction's in-order stream start as it
//! grows ([`StreamView`]), SYNs, and the bounds it hits. Output: the flow's
//! [`HandshakeSummary`] once settled or ended, and counts in [`SessionStats`].
//! The flow table knows nothing of TLS: it asks [`TlsSession::wants_bytes`]
//! whether to keep reassembling a direction and hands the bytes over. A flow
//! whose client sent no server name and whose server negotiated TLS 1.2 or
//! older is read on past the ServerHello up to the server's (clear-text) leaf
//! certificate, within the same stream cap.

use std::sync::Arc;

use super::certificate::CertificateCache;
use super::extract::{Malformed, Opening, TlsError, parse_cut_opening, parse_opening};
use super::summary::{
    ClientFacts, DnsAtHello, DnsLookup, HandshakeSummary, ServerAnswer, ServerCertificate,
};
use super::version::Version;
use crate::flow::key::{Direction, FlowKey};

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
    pub malformed: [u64; Malformed::ALL.len()],
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

impl SessionStats {
    fn count_malformed(&mut self, m: Malformed) {
        if let Some(i) = Malformed::ALL.iter().position(|x| *x == m) {
            self.malformed[i] += 1;
        }
    }
}

/// What the sessions of one table share: scratch space, the certificate
/// cache, the passive DNS lookup and the counters.
pub struct SessionCtx<'a> {
    pub scratch: &'a mut Vec<u8>,
    pub certificates: &'a mut CertificateCache,
    /// Largest handshake message (the stream cap).
    pub max_message: usize,
    pub dns_lookup: Option<&'a DnsLookup>,
    pub stats: &'a mut SessionStats,
}

/// One direction's stream start as the session reads it.
#[derive(Clone, Copy)]
pub struct StreamView<'a> {
    pub bytes: &'a [u8],
    pub syn_seen: bool,
    pub first_ts: Option<u64>,
}

/// What one direction's stream start has told us so far.
#[derive(Clone, Debug, PartialEq, Eq)]
enum DirStatus {
    Empty,
    Pending,
    /// A HelloRetryRequest (selecting this version) and nothing after it yet:
    /// waits like `Pending`, and is the answer if the flow ends here.
    Retried(Version),
    Hello(ClientFacts),
    Answer(ServerAnswer),
    NotTls,
    MidStream,
    Failed,
}

impl DirStatus {
    /// Still reading this direction's opening.
    #[inline]
    fn is_open(&self) -> bool {
        matches!(
            self,
            DirStatus::Empty | DirStatus::Pending | DirStatus::Retried(_)
        )
    }

    fn is_terminal_non_hello(&self) -> bool {
        matches!(
            self,
            DirStatus::NotTls | DirStatus::MidStream | DirStatus::Failed
        )
    }
}

/// The server certificate of a flow, looked for only when it can tell which
/// server a client without SNI reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Cert {
    /// Not looked for: the client named the server, the version encrypts the
    /// certificate, or no ServerHello yet.
    #[default]
    Unwanted,
    /// The ServerHello is in: reading the server's stream on to the certificate.
    Waiting,
    /// Looked for: its names, or `None` (none sent, or not readable).
    Read(Option<Arc<ServerCertificate>>),
}

/// The TLS state of one flow (indexed by direction: 0 low-to-high, 1 high-to-low).
pub struct TlsSession {
    status: [DirStatus; 2],
    cert: Cert,
    /// The server's direction, once a SYN or SYN-ACK told it.
    server: Option<usize>,
    /// Passive DNS at the ClientHello.
    dns: Option<DnsAtHello>,
}

impl Default for TlsSession {
    fn default() -> Self {
        TlsSession {
            status: [DirStatus::Empty, DirStatus::Empty],
            cert: Cert::Unwanted,
            server: None,
            dns: None,
        }
    }
}

impl TlsSession {
    /// A SYN (`ack`: a SYN-ACK) in direction `d` tells which side serves.
    #[inline]
    pub fn on_syn(&mut self, d: usize, ack: bool) {
        if self.server.is_none() {
            self.server = Some(if ack { d } else { 1 - d });
        }
    }

    /// Whether direction `d`'s bytes still matter: its opening is not known
    /// yet, or its certificate is being read.
    #[inline]
    pub fn wants_bytes(&self, d: usize) -> bool {
        self.status[d].is_open() || self.reading_certificate(d)
    }

    /// Direction `d`'s stream start after a segment: `grew` when its
    /// in-order prefix grew, `cut` when the capture cut the segment (the rest
    /// will never come). `reading_cert` is [`Self::reading_certificate`] as
    /// it was before the segment; the flow's `key` and the segment's `dir`
    /// and `seg_ts` serve the DNS lookup at the ClientHello.
    #[allow(clippy::too_many_arguments)]
    pub fn on_stream(
        &mut self,
        ctx: &mut SessionCtx<'_>,
        d: usize,
        streams: [StreamView<'_>; 2],
        grew: bool,
        cut: bool,
        reading_cert: bool,
        key: &FlowKey,
        dir: Direction,
        seg_ts: u64,
    ) {
        let me = streams[d];
        let mut status = None;
        if grew && !reading_cert {
            status = Some(parse_status(me.bytes, ctx));
        }
        // The capture cut this segment (snap length): the bytes after it
        // will never come, so what the stream start shows is all there is.
        if cut
            && !reading_cert
            && matches!(
                status.as_ref().unwrap_or(&self.status[d]),
                DirStatus::Pending | DirStatus::Retried(_) | DirStatus::Empty
            )
            && !me.bytes.is_empty()
        {
            ctx.stats.cut_handshakes += 1;
            status = Some(match parse_cut_opening(me.bytes) {
                Some(Opening::ClientHello(f)) => DirStatus::Hello(f),
                Some(Opening::Answer(a)) => DirStatus::Answer(a),
                None => DirStatus::Failed,
            });
        }
        if let Some(mut st) = status {
            // A bare alert is an answer only where the stream start is known
            // (SYN seen) or a ClientHello was seen; mid-flow, it is just a
            // late packet of a connection we missed.
            if matches!(st, DirStatus::Answer(ServerAnswer::Alert { .. }))
                && !me.syn_seen
                && !matches!(self.status[1 - d], DirStatus::Hello(_))
                && !streams[1 - d].syn_seen
            {
                st = DirStatus::MidStream;
            }
            if let DirStatus::Answer(ServerAnswer::Hello { version, .. }) = st
                && certificate_in_clear(version)
                && !self.client_named_server()
            {
                self.cert = Cert::Waiting;
            }
            if let (DirStatus::Hello(facts), Some(lookup)) = (&st, ctx.dns_lookup) {
                let ts = me.first_ts.unwrap_or(seg_ts);
                let server = key.endpoints(dir).1.ip();
                self.dns = Some(lookup(server, facts.sni.as_deref(), ts));
            }
            self.status[d] = st;
        }
        if grew && self.reading_certificate(d) {
            self.cert = read_certificate(me.bytes, ctx);
        }
    }

    /// Bounds hit by direction `d` after a segment (`cap`: its stream start
    /// reached the cap; `over_budget`: the table's buffers are over budget);
    /// `reading_cert` as it was after the segment was read. Returns whether
    /// each bound stopped the direction.
    #[inline]
    pub fn on_bounds(
        &mut self,
        ctx: &mut SessionCtx<'_>,
        d: usize,
        cap: bool,
        over_budget: bool,
        reading_cert: bool,
    ) -> (bool, bool) {
        let capped = cap
            && (matches!(self.status[d], DirStatus::Pending | DirStatus::Retried(_))
                || reading_cert);
        if capped {
            self.give_up(ctx, d);
        }
        let budget = over_budget && (self.status[d].is_open() || reading_cert);
        if budget {
            self.give_up(ctx, d);
        }
        (capped, budget)
    }

    /// A bound stops direction `d`: its stream start, or the certificate read
    /// after it.
    fn give_up(&mut self, ctx: &mut SessionCtx<'_>, d: usize) {
        if self.reading_certificate(d) {
            ctx.stats.certificates.failed += 1;
            self.cert = Cert::Read(None);
        } else {
            self.status[d] = DirStatus::Failed;
        }
    }

    /// Whether the flow's facts are complete; pushes the summary (when the
    /// flow was TLS) and returns true if so.
    #[inline]
    pub fn settle(
        &mut self,
        ctx: &mut SessionCtx<'_>,
        key: &FlowKey,
        first_ts: [Option<u64>; 2],
        out: &mut Vec<HandshakeSummary>,
    ) -> bool {
        use DirStatus::*;
        let stats = &mut *ctx.stats;
        let hellos = self.status.iter().filter(|s| matches!(s, Hello(_))).count();
        let answers = self
            .status
            .iter()
            .filter(|s| matches!(s, Answer(_)))
            .count();
        if hellos == 2 || answers == 2 {
            stats.conflicting_roles += 1;
            true
        } else if self.cert_pending() {
            false
        } else if hellos == 1 && answers == 1 {
            self.emit(key, first_ts, out);
            true
        } else if hellos + answers == 1 {
            // One side spoke TLS; settle once the other side can add nothing.
            let other = self
                .status
                .iter()
                .find(|s| !matches!(s, Hello(_) | Answer(_)))
                .unwrap_or(&Empty);
            if other.is_terminal_non_hello() {
                if *other == NotTls && hellos == 1 {
                    stats.server_not_tls += 1;
                }
                self.emit(key, first_ts, out);
                true
            } else {
                false
            }
        } else if self.status.contains(&NotTls) && !self.server_spoke_first() {
            stats.non_tls += 1;
            true
        } else if self.status.contains(&MidStream) {
            stats.midstream += 1;
            true
        } else {
            self.status == [Failed, Failed]
        }
    }

    /// The flow ends before it settled: report what is known.
    pub fn finish(
        &mut self,
        ctx: &mut SessionCtx<'_>,
        key: &FlowKey,
        first_ts: [Option<u64>; 2],
        out: &mut Vec<HandshakeSummary>,
    ) {
        if self.cert_pending() {
            ctx.stats.certificates.failed += 1;
        }
        // A HelloRetryRequest that was the server's last word is its answer.
        for st in &mut self.status {
            if let DirStatus::Retried(version) = *st {
                *st = DirStatus::Answer(ServerAnswer::Hello {
                    version,
                    retried: true,
                });
            }
        }
        let known = self
            .status
            .iter()
            .any(|s| matches!(s, DirStatus::Hello(_) | DirStatus::Answer(_)));
        if known {
            self.emit(key, first_ts, out);
        } else if self.status.contains(&DirStatus::NotTls) {
            // A server banner the client never answered.
            ctx.stats.non_tls += 1;
        } else if self.status.contains(&DirStatus::Pending) {
            ctx.stats.incomplete += 1;
        }
    }

    fn emit(&mut self, key: &FlowKey, first_ts: [Option<u64>; 2], out: &mut Vec<HandshakeSummary>) {
        let mut client = None;
        let mut answer = None;
        let mut client_dir = None;
        for (i, st) in self.status.iter().enumerate() {
            let dir = if i == 0 {
                Direction::LoToHi
            } else {
                Direction::HiToLo
            };
            match st {
                DirStatus::Hello(f) => {
                    client = Some(f.clone());
                    client_dir = Some(dir);
                }
                DirStatus::Answer(ans) => {
                    answer = Some((*ans, dir));
                }
                _ => {}
            }
        }
        // The client sent the ClientHello; with only the answer seen, it received it.
        let (dir, ts) = match (client_dir, answer) {
            (Some(d), _) => (d, first_ts[d.index()]),
            (None, Some((_, d))) => (d.reverse(), first_ts[d.index()]),
            (None, None) => return,
        };
        let (c, s) = key.endpoints(dir);
        out.push(HandshakeSummary {
            ts_ns: ts.unwrap_or(0),
            client_ip: c.ip(),
            client_port: c.port,
            server_ip: s.ip(),
            server_port: s.port,
            client,
            answer: answer.map(|(ans, _)| ans),
            dns: self.dns.take(),
            certificate: match std::mem::take(&mut self.cert) {
                Cert::Read(c) => c,
                Cert::Unwanted | Cert::Waiting => None,
            },
        });
    }

    /// The client's hello named the server (SNI): no certificate is needed.
    #[inline]
    fn client_named_server(&self) -> bool {
        self.status
            .iter()
            .any(|s| matches!(s, DirStatus::Hello(f) if f.sni.is_some()))
    }

    /// Still reading the certificate, and it still matters.
    #[inline]
    fn cert_pending(&self) -> bool {
        self.cert == Cert::Waiting && !self.client_named_server()
    }

    /// Only the server has spoken, and not TLS (a banner on a TLS port):
    /// each direction is judged on its own, so the client's first bytes,
    /// which may be a ClientHello, are still awaited.
    fn server_spoke_first(&self) -> bool {
        self.server
            .is_some_and(|s| self.status[s] == DirStatus::NotTls && self.status[1 - s].is_open())
    }

    /// Direction `d` is the server's, read on for its certificate.
    #[inline]
    pub fn reading_certificate(&self, d: usize) -> bool {
        matches!(self.status[d], DirStatus::Answer(_)) && self.cert_pending()
    }
}

fn parse_status(bytes: &[u8], ctx: &mut SessionCtx<'_>) -> DirStatus {
    match parse_opening(bytes, ctx.scratch, ctx.max_message) {
        Ok(Opening::ClientHello(f)) => DirStatus::Hello(f),
        Ok(Opening::Answer(a)) => DirStatus::Answer(a),
        Err(TlsError::NeedMore) => DirStatus::Pending,
        Err(TlsError::AfterRetry(v)) => DirStatus::Retried(v),
        Err(TlsError::NotTls) => DirStatus::NotTls,
        Err(TlsError::MidStream) => DirStatus::MidStream,
        Err(TlsError::Malformed(m)) => {
            ctx.stats.count_malformed(m);
            DirStatus::Failed
        }
    }
}

/// The server's stream start, read for its certificate (through the worker's
/// cache of parsed leaves), with the result counted.
fn read_certificate(server: &[u8], ctx: &mut SessionCtx<'_>) -> Cert {
    match ctx.certificates.read(server, ctx.scratch, ctx.max_message) {
        Ok(Some(c)) => {
            ctx.stats.certificates.names += 1;
            Cert::Read(Some(c))
        }
        Ok(None) => {
            ctx.stats.certificates.none += 1;
            Cert::Read(None)
        }
        Err(TlsError::NeedMore) => Cert::Waiting,
        Err(e) => {
            if let TlsError::Malformed(m) = e {
                ctx.stats.count_malformed(m);
            }
            ctx.stats.certificates.failed += 1;
            Cert::Read(None)
        }
    }
}

/// SSL 3.0 to TLS 1.2 send the server's certificate in clear text.
fn certificate_in_clear(v: Version) -> bool {
    (Version::SSL3.0..=Version::TLS12.0).contains(&v.0)
}
