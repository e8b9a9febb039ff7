//! The TLS side of one flow ([`TlsSession`], the flow table's [`Session`]):
//! what each direction's stream start opened with, the server-certificate
//! policy, and when the flow's facts are complete.
//!
//! Input: from the flow table, each direction's in-order stream start as it
//! grows, SYNs, and the bounds it hits. Output: the flow's
//! [`HandshakeSummary`] once settled or ended, and counts in [`SessionStats`]
//! (in the table's [`TlsCtx`]). Each direction is read through one
//! incremental record layer ([`OpeningReader`] over `record.rs`): its opening,
//! then, for a flow whose client sent no server name and whose server
//! negotiated TLS 1.2 or older, on past the ServerHello to the server's
//! (clear-text) leaf certificate, within the same stream cap. No byte is
//! parsed twice.

use std::sync::Arc;

pub use super::context::{CertificateResult, CertificateStats, ParseProblem, SessionStats, TlsCtx};
use crate::flow::{FlowTable, TableLimits};

/// A flow table of TLS sessions.
pub type TlsTable = FlowTable<TlsSession>;

/// A flow table of TLS sessions, handshake messages bounded by the stream cap.
pub fn tls_table(limits: TableLimits) -> TlsTable {
    FlowTable::new(limits, TlsCtx::new(limits.stream.max_bytes))
}

use super::error::TlsError;
use super::extract::{Opening, OpeningReader, parse_cut_opening};
use super::summary::{
    ClientFacts, DnsAtHello, HandshakeSummary, ServerAnswer, ServerCertificate, ServerDetail,
};
use super::version::Version;
use crate::flow::key::{Direction, FlowKey};
use crate::flow::session::{Session, StreamEvent};
use crate::preamble::{self, Framing, Kind, Preamble, PreambleResult, Verdict, openvpn, tds};

/// What one direction's stream start has told us so far.
#[derive(Clone, Debug, PartialEq, Eq)]
enum DirStatus {
    Empty,
    Pending,
    /// A HelloRetryRequest (selecting this version) and nothing after it yet:
    /// waits like `Pending`, and is the answer if the flow ends here.
    Retried(Version),
    /// Boxed: a flow holds two statuses and at most one hello, so the
    /// table's per-flow state stays small (a full table is mostly held
    /// hellos).
    Hello(Box<ClientFacts>),
    /// The answer, with a ServerHello's details when the table keeps them.
    Answer(ServerAnswer, Option<Arc<ServerDetail>>),
    NotTls,
    MidStream,
    Failed,
}

impl DirStatus {
    fn answer(a: ServerAnswer) -> DirStatus {
        DirStatus::Answer(a, None)
    }

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

/// What precedes TLS in a flow.
#[derive(Debug, Default)]
enum Pre {
    /// No payload seen yet.
    #[default]
    Unknown,
    /// TLS (or not) from the first byte: nothing to skip.
    Absent,
    /// A preamble being read (see [`Verdict::NeedMore`]).
    Pending { kind: Kind, refused: bool },
    /// TLS after this preamble; the readers start where it ends.
    Tls(Box<Preamble>),
    /// A preamble that did not lead to TLS.
    Ended,
}

/// What [`TlsSession::read_preamble`] lets the segment do.
enum PreStep {
    /// Nothing to read yet (or ever).
    Wait,
    /// Read this direction as usual.
    Read,
    /// The preamble just ended: read both directions from where TLS starts.
    ReadBoth,
}

/// The TLS state of one flow (indexed by direction: 0 low-to-high, 1 high-to-low).
pub struct TlsSession {
    status: [DirStatus; 2],
    /// Where each direction's record walk stands.
    readers: [OpeningReader; 2],
    cert: Cert,
    /// The server's direction, once a SYN or SYN-ACK told it.
    server: Option<usize>,
    /// Passive DNS at the ClientHello.
    dns: Option<DnsAtHello>,
    pre: Pre,
}

impl Default for TlsSession {
    fn default() -> Self {
        TlsSession {
            status: [DirStatus::Empty, DirStatus::Empty],
            readers: Default::default(),
            cert: Cert::Unwanted,
            server: None,
            dns: None,
            pre: Pre::Unknown,
        }
    }
}

impl Session for TlsSession {
    type Ctx = TlsCtx;
    type Output = HandshakeSummary;

    /// A SYN (`ack`: a SYN-ACK) in direction `d` tells which side serves.
    #[inline]
    fn on_syn(&mut self, d: usize, ack: bool) {
        if self.server.is_none() {
            self.server = Some(if ack { d } else { 1 - d });
        }
    }

    /// Whether direction `d`'s bytes still matter: its opening is not known
    /// yet, or its certificate is being read.
    #[inline]
    fn wants_bytes(&self, d: usize) -> bool {
        self.status[d].is_open() || self.reading_certificate(d)
    }

    fn on_stream(&mut self, ctx: &mut TlsCtx, ev: StreamEvent<'_>) {
        if !matches!(self.pre, Pre::Absent | Pre::Tls(_)) {
            match self.read_preamble(ctx, ev) {
                PreStep::Wait => return,
                PreStep::Read => {}
                PreStep::ReadBoth => {
                    // TLS may already wait in the other direction (a client
                    // that sent its hello right after its CONNECT).
                    let other = 1 - ev.d;
                    if ev.streams[other].bytes.len() > self.readers[other].start() {
                        let ev = StreamEvent {
                            d: other,
                            dir: ev.dir.reverse(),
                            grew: true,
                            cut: false,
                            ..ev
                        };
                        self.read_direction(ctx, ev);
                    }
                    let ev = StreamEvent { grew: true, ..ev };
                    self.read_direction(ctx, ev);
                    return;
                }
            }
        }
        self.read_direction(ctx, ev);
    }

    #[inline]
    fn on_bounds(
        &mut self,
        ctx: &mut TlsCtx,
        d: usize,
        cap: bool,
        over_budget: bool,
    ) -> (bool, bool) {
        if let Pre::Pending { kind, .. } = self.pre
            && (cap || over_budget)
        {
            // A bound stops a preamble still undecided.
            ctx.stats.count_preamble(kind, PreambleResult::GaveUp);
            self.pre = Pre::Ended;
            self.status = [DirStatus::Failed, DirStatus::Failed];
            return (cap, over_budget && !cap);
        }
        let reading_cert = self.reading_certificate(d);
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

    #[inline]
    fn settle(
        &mut self,
        ctx: &mut TlsCtx,
        key: &FlowKey,
        first_ts: [Option<u64>; 2],
        out: &mut Vec<HandshakeSummary>,
    ) -> bool {
        use DirStatus::*;
        let stats = &mut ctx.stats;
        let hellos = self.status.iter().filter(|s| matches!(s, Hello(_))).count();
        let answers = self
            .status
            .iter()
            .filter(|s| matches!(s, Answer(..)))
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
                .find(|s| !matches!(s, Hello(_) | Answer(..)))
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
        } else if self.status.iter().any(|s| matches!(s, NotTls)) && !self.server_spoke_first() {
            stats.non_tls += 1;
            true
        } else if self.status.iter().any(|s| matches!(s, MidStream)) {
            stats.midstream += 1;
            true
        } else {
            matches!(self.status, [Failed, Failed])
        }
    }

    /// The flow ends before it settled: report what is known.
    fn finish(
        &mut self,
        ctx: &mut TlsCtx,
        key: &FlowKey,
        first_ts: [Option<u64>; 2],
        out: &mut Vec<HandshakeSummary>,
    ) {
        if self.cert_pending() {
            ctx.stats.certificates.failed += 1;
        }
        let hello_read = self.status.iter().any(|s| matches!(s, DirStatus::Hello(_)));
        if let Pre::Pending { kind, refused } = self.pre
            && !(kind == Kind::Unknown && hello_read)
        {
            // A refusal the client never followed up is the end of it.
            let result = if refused {
                PreambleResult::NoTls
            } else {
                PreambleResult::Incomplete
            };
            ctx.stats.count_preamble(kind, result);
            // A refusal, or an opening no parser knows that showed no TLS
            // before the flow ended: not TLS.
            if refused || kind == Kind::Unknown {
                ctx.stats.non_tls += 1;
            }
            self.pre = Pre::Ended;
            return;
        }
        // A HelloRetryRequest that was the server's last word is its answer.
        for st in &mut self.status {
            if let DirStatus::Retried(version) = *st {
                *st = DirStatus::answer(ServerAnswer::Hello {
                    version,
                    retried: true,
                });
            }
        }
        let known = self
            .status
            .iter()
            .any(|s| matches!(s, DirStatus::Hello(_) | DirStatus::Answer(..)));
        if known {
            self.emit(key, first_ts, out);
        } else if self.status.contains(&DirStatus::NotTls) {
            // A server banner the client never answered.
            ctx.stats.non_tls += 1;
        } else if self.status.contains(&DirStatus::Pending) {
            ctx.stats.incomplete += 1;
        }
    }
}

impl TlsSession {
    /// A bound stops direction `d`: its stream start, or the certificate read
    /// after it.
    fn give_up(&mut self, ctx: &mut TlsCtx, d: usize) {
        if self.reading_certificate(d) {
            ctx.stats.certificates.failed += 1;
            self.cert = Cert::Read(None);
        } else {
            self.status[d] = DirStatus::Failed;
        }
    }

    /// Direction `ev.d`'s stream start after a segment (or after the
    /// preamble before it ended), as its TLS reader sees it: the stream
    /// itself, or the handshake bytes a framing (TDS) carries, rebuilt in
    /// the table's own buffer (no per-flow copy; what the reader has read
    /// stays a prefix of it as the stream grows).
    fn read_direction(&mut self, ctx: &mut TlsCtx, ev: StreamEvent<'_>) {
        let (framing, at) = match &self.pre {
            Pre::Tls(p) if p.framing != Framing::None => (p.framing, p.tls_at[ev.d]),
            _ => return self.read_view(ctx, ev),
        };
        let mut unwrapped = std::mem::take(&mut ctx.unwrapped);
        unwrapped.clear();
        let framed = ev.streams[ev.d].bytes.get(at..).unwrap_or(&[]);
        match framing {
            Framing::None => {}
            Framing::Tds => tds::unwrap(framed, &mut unwrapped),
            Framing::OpenVpn { hmac } => openvpn::unwrap(framed, hmac, &mut unwrapped),
        }
        let mut streams = ev.streams;
        streams[ev.d].bytes = &unwrapped;
        self.read_view(ctx, StreamEvent { streams, ..ev });
        ctx.unwrapped = unwrapped;
    }

    /// Reads direction `ev.d`: its opening, then its certificate.
    fn read_view(&mut self, ctx: &mut TlsCtx, ev: StreamEvent<'_>) {
        let d = ev.d;
        let me = ev.streams[d];
        let reading_cert = self.reading_certificate(d);
        let mut status = None;
        if ev.grew && !reading_cert {
            status = Some(self.read_status(ctx, d, me.bytes));
        }
        // The capture cut this segment (snap length): the bytes after it
        // will never come, so what the stream start shows is all there is.
        if ev.cut
            && !reading_cert
            && matches!(
                status.as_ref().unwrap_or(&self.status[d]),
                DirStatus::Pending | DirStatus::Retried(_) | DirStatus::Empty
            )
            && me.bytes.len() > self.readers[d].start()
        {
            ctx.stats.cut_handshakes += 1;
            let tls = me.bytes.get(self.readers[d].start()..).unwrap_or(&[]);
            status = Some(match parse_cut_opening(tls) {
                Some(Opening::ClientHello(f)) => DirStatus::Hello(Box::new(f)),
                Some(Opening::Answer(a, _)) => DirStatus::answer(a),
                None => DirStatus::Failed,
            });
        }
        if let Some(mut st) = status {
            // A bare alert is an answer only where the stream start is known
            // (SYN seen) or a ClientHello was seen; mid-flow, it is just a
            // late packet of a connection we missed.
            if matches!(st, DirStatus::Answer(ServerAnswer::Alert { .. }, _))
                && !me.syn_seen
                && !matches!(self.status[1 - d], DirStatus::Hello(_))
                && !ev.streams[1 - d].syn_seen
            {
                st = DirStatus::MidStream;
            }
            if let DirStatus::Answer(ServerAnswer::Hello { version, .. }, _) = st
                && certificate_in_clear(version)
                && !self.client_named_server()
            {
                self.cert = Cert::Waiting;
            }
            if let (DirStatus::Hello(facts), Some(lookup)) = (&st, &ctx.dns_lookup) {
                let ts = me.first_ts.unwrap_or(ev.ts);
                let server = ev.key.endpoints(ev.dir).1.ip();
                self.dns = Some(lookup(server, facts.sni.as_deref(), ts));
            }
            self.status[d] = st;
        }
        if ev.grew && self.reading_certificate(d) {
            self.cert = self.read_certificate(ctx, d, me.bytes);
        }
    }

    /// Reads what precedes TLS until it is known: nothing (TLS, or
    /// something else, from the first byte), or a preamble after which TLS
    /// starts at a given offset of each direction, or one that did not lead
    /// to TLS. A stream that opens like TLS skips the preamble parsers.
    fn read_preamble(&mut self, ctx: &mut TlsCtx, ev: StreamEvent<'_>) -> PreStep {
        let first = ev.streams[ev.d].bytes.first();
        if matches!(self.pre, Pre::Unknown) && first.is_some_and(|&b| opens_like_tls(b)) {
            self.pre = Pre::Absent;
            return PreStep::Read;
        }
        if matches!(self.pre, Pre::Ended) {
            return PreStep::Wait;
        }
        let streams = [ev.streams[0].bytes, ev.streams[1].bytes];
        if let (
            Pre::Pending {
                kind: Kind::Unknown,
                ..
            },
            Some(server),
        ) = (&self.pre, self.server)
            && matches!(self.status[1 - server], DirStatus::Hello(_))
        {
            return self.answer_after_banner(ctx, ev, server);
        }
        let mut verdict = preamble::parse(streams);
        // No parser knows the opening: look for TLS a little further in,
        // where the SYN told which side is the client (never mid-flow).
        if verdict == Verdict::Absent
            && let Some(server) = self.server
            && ev.streams[1 - server].syn_seen
            && !(streams[1 - server]
                .first()
                .is_some_and(|&b| opens_like_tls(b))
                && streams[server].first().is_none_or(|&b| opens_like_tls(b)))
        {
            verdict = preamble::search_unknown(streams, 1 - server);
            if verdict == Verdict::Absent {
                // The search ran and found no TLS.
                ctx.stats
                    .count_preamble(Kind::Unknown, PreambleResult::NoTls);
            }
        }
        match verdict {
            Verdict::Absent => {
                self.pre = Pre::Absent;
                PreStep::ReadBoth
            }
            Verdict::NeedMore { kind, refused } => {
                self.pre = Pre::Pending { kind, refused };
                // A client that opens with TLS after the server's banner:
                // its hello is read (and reported even if no answer comes)
                // while the server's answer is looked for after the banner.
                let client_tls = self.server.is_some_and(|s| {
                    ev.d == 1 - s && streams[ev.d].first().is_some_and(|&b| opens_like_tls(b))
                });
                if kind == Kind::Unknown && client_tls {
                    PreStep::Read
                } else {
                    PreStep::Wait
                }
            }
            Verdict::Tls(p) => {
                ctx.stats.count_preamble(p.kind, PreambleResult::Tls);
                self.server.get_or_insert(1 - p.client);
                // Framed TLS is read from the start of its unwrapped bytes.
                let at = |d: usize| match p.framing {
                    Framing::None => p.tls_at[d],
                    Framing::Tds | Framing::OpenVpn { .. } => 0,
                };
                self.readers = [
                    OpeningReader::starting_at(at(0)),
                    OpeningReader::starting_at(at(1)),
                ];
                self.pre = Pre::Tls(Box::new(p));
                PreStep::ReadBoth
            }
            verdict @ (Verdict::NoTls(kind) | Verdict::GaveUp(kind) | Verdict::Hidden(kind)) => {
                let result = match verdict {
                    Verdict::GaveUp(_) => PreambleResult::GaveUp,
                    Verdict::Hidden(_) => PreambleResult::Hidden,
                    _ => PreambleResult::NoTls,
                };
                ctx.stats.count_preamble(kind, result);
                self.pre = Pre::Ended;
                self.status = [DirStatus::NotTls, DirStatus::NotTls];
                PreStep::Wait
            }
        }
    }

    /// The client opened with TLS after the server's banner and its hello
    /// is read (its bytes may be released): the server's answer is looked
    /// for after the banner, in the server's segments only.
    fn answer_after_banner(
        &mut self,
        ctx: &mut TlsCtx,
        ev: StreamEvent<'_>,
        server: usize,
    ) -> PreStep {
        if ev.d != server {
            return PreStep::Wait;
        }
        match preamble::unknown::answer(ev.streams[server].bytes) {
            Ok(at) => {
                ctx.stats.count_preamble(Kind::Unknown, PreambleResult::Tls);
                let mut tls_at = [0, 0];
                tls_at[server] = at;
                self.readers[server] = OpeningReader::starting_at(at);
                self.pre = Pre::Tls(Box::new(Preamble {
                    client: 1 - server,
                    tls_at,
                    ..preamble::tls(Kind::Unknown, 0, 0)
                }));
                PreStep::Read
            }
            Err(true) => PreStep::Wait,
            Err(false) => {
                // No answer within the window: the banner and what follows
                // are the server's, not TLS.
                ctx.stats
                    .count_preamble(Kind::Unknown, PreambleResult::NoTls);
                self.pre = Pre::Absent;
                PreStep::Read
            }
        }
    }

    /// Reads direction `d`'s opening on from where its reader stands.
    fn read_status(&mut self, ctx: &mut TlsCtx, d: usize, bytes: &[u8]) -> DirStatus {
        match self.readers[d].read(
            bytes,
            &mut ctx.scratch,
            ctx.max_message,
            Some(&mut ctx.fingerprints),
        ) {
            Ok(Opening::ClientHello(f)) => DirStatus::Hello(Box::new(f)),
            Ok(Opening::Answer(a, detail)) => DirStatus::Answer(a, detail),
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

    /// Reads the server's stream (direction `d`) on from its ServerHello to
    /// the certificate (through the worker's cache of parsed leaves), with
    /// the result counted.
    fn read_certificate(&mut self, ctx: &mut TlsCtx, d: usize, server: &[u8]) -> Cert {
        let records = &mut self.readers[d].records;
        match ctx
            .certificates
            .read(records, server, &mut ctx.scratch, ctx.max_message)
        {
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

    fn emit(&mut self, key: &FlowKey, first_ts: [Option<u64>; 2], out: &mut Vec<HandshakeSummary>) {
        let mut client = None;
        let mut answer = None;
        let mut client_dir = None;
        let mut server = None;
        // The flow ends here (settled or finished): its facts move out.
        for (i, st) in self.status.iter_mut().enumerate() {
            let dir = if i == 0 {
                Direction::LoToHi
            } else {
                Direction::HiToLo
            };
            match st {
                DirStatus::Hello(_) => {
                    if let DirStatus::Hello(f) = std::mem::replace(st, DirStatus::Empty) {
                        client = Some(*f);
                    }
                    client_dir = Some(dir);
                }
                DirStatus::Answer(ans, detail) => {
                    answer = Some((*ans, dir));
                    server = detail.take();
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
            preamble: match std::mem::take(&mut self.pre) {
                Pre::Tls(p) => Some(p),
                _ => None,
            },
            certificate: match std::mem::take(&mut self.cert) {
                Cert::Read(c) => c,
                Cert::Unwanted | Cert::Waiting => None,
            },
            server,
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
        self.server.is_some_and(|s| {
            matches!(self.status[s], DirStatus::NotTls) && self.status[1 - s].is_open()
        })
    }

    /// Direction `d` is the server's, read on for its certificate.
    #[inline]
    fn reading_certificate(&self, d: usize) -> bool {
        matches!(self.status[d], DirStatus::Answer(..)) && self.cert_pending()
    }
}

/// A first byte that opens a TLS record (change_cipher_spec to heartbeat)
/// or an SSLv2 hello: the stream needs no preamble parser.
#[inline]
fn opens_like_tls(b: u8) -> bool {
    (20..=24).contains(&b) || b & 0x80 != 0
}

/// SSL 3.0 to TLS 1.2 send the server's certificate in clear text.
fn certificate_in_clear(v: Version) -> bool {
    (Version::SSL3.0..=Version::TLS12.0).contains(&v.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::l4::{ACK, RST, SYN};
    use crate::flow::SegmentIn;
    use crate::flow::TableLimits;
    use crate::flow::table::testing::{key, seg};

    fn limits(max_flows: usize) -> TableLimits {
        crate::flow::table::testing::limits(max_flows, 16384)
    }

    /// A ClientHello (TLS 1.2, no extensions or one server_name).
    fn client_hello(sni: Option<&str>) -> Vec<u8> {
        let exts: Vec<Vec<u8>> = sni
            .map(crate::tls::craft::sni_extension)
            .into_iter()
            .collect();
        crate::tls::craft::client_hello(0x0303, &exts)
    }

    /// One handshake: the ClientHello, then a real OpenSSL TLS 1.2 server
    /// flight (ServerHello, Certificate, ...) in two segments.
    fn handshake(
        t: &mut TlsTable,
        sni: Option<&str>,
        out: &mut Vec<HandshakeSummary>,
    ) -> [usize; 2] {
        let flight: &[u8] = include_bytes!("../../tests/data/tls/server-flight-tls12.bin");
        let k = key(1);
        let hello = client_hello(sni);
        t.ingest(seg(k, 1, ACK, &hello), out);
        let server = |seq: u32, payload| SegmentIn {
            dir: Direction::HiToLo,
            seq,
            ..seg(k, 2, ACK, payload)
        };
        t.ingest(server(5000, &flight[..200]), out);
        let after_first = out.len();
        t.ingest(server(5200, &flight[200..]), out);
        [after_first, out.len()]
    }

    #[test]
    fn table_reads_the_certificate_only_without_sni() {
        // No SNI: the flow waits past the ServerHello for the certificate.
        let mut t = tls_table(limits(16));
        let mut out = Vec::new();
        assert_eq!(handshake(&mut t, None, &mut out), [0, 1]);
        let names: Vec<&str> = out[0].certificate.as_ref().unwrap().names().collect();
        assert!(names.contains(&"*.blob.core.windows.net"), "{names:?}");
        assert_eq!(
            t.ctx_mut().stats.certificates,
            CertificateStats {
                names: 1,
                none: 0,
                failed: 0
            }
        );
        // With SNI: settled at the ServerHello, no certificate read.
        let mut t = tls_table(limits(16));
        let mut out = Vec::new();
        assert_eq!(handshake(&mut t, Some("a.example"), &mut out), [1, 1]);
        assert_eq!(out[0].certificate, None);
        assert_eq!(t.ctx_mut().stats.certificates, CertificateStats::default());
        // A stream cap the leaf does not fit in: counted, the flow still reported.
        let mut l = limits(16);
        l.stream.max_bytes = 300;
        let mut t = tls_table(l);
        let mut out = Vec::new();
        assert_eq!(handshake(&mut t, None, &mut out), [0, 1]);
        assert_eq!(out[0].certificate, None);
        assert!(out[0].negotiated().is_some());
        assert_eq!(t.stats.stream_cap_hits, 1);
        assert_eq!(t.ctx_mut().stats.certificates.failed, 1);
        // The flow ends before the certificate is complete: reported without it.
        let mut t = tls_table(limits(16));
        let mut out = Vec::new();
        let k = key(1);
        let flight: &[u8] = include_bytes!("../../tests/data/tls/server-flight-tls12.bin");
        t.ingest(seg(k, 1, ACK, &client_hello(None)), &mut out);
        t.ingest(
            SegmentIn {
                dir: Direction::HiToLo,
                seq: 5000,
                ..seg(k, 2, ACK, &flight[..200])
            },
            &mut out,
        );
        t.ingest(seg(k, 3, ACK | RST, b""), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].certificate, None);
        assert_eq!(t.ctx_mut().stats.certificates.failed, 1);
    }

    /// The server's flight in every two-segment split and one byte at a
    /// time: the record layer reads on where it stopped, with the same
    /// result as the whole flight in one segment.
    #[test]
    fn session_reads_any_split_of_the_flight() {
        let flight: &[u8] = include_bytes!("../../tests/data/tls/server-flight-tls12.bin");
        let k = key(1);
        let run = |cuts: &[usize]| {
            let mut t = tls_table(limits(16));
            let mut out = Vec::new();
            t.ingest(seg(k, 1, ACK, &client_hello(None)), &mut out);
            let mut from = 0;
            for &to in cuts.iter().chain([flight.len()].iter()) {
                if to > from {
                    let seq = 5000 + from as u32;
                    t.ingest(
                        SegmentIn {
                            dir: Direction::HiToLo,
                            seq,
                            ..seg(k, 2, ACK, &flight[from..to])
                        },
                        &mut out,
                    );
                    from = to;
                }
            }
            t.drain(&mut out);
            let stats = t.ctx_mut().stats.clone();
            (out, stats)
        };
        let whole = run(&[]);
        assert_eq!(whole.0.len(), 1);
        assert!(whole.0[0].certificate.is_some());
        for cut in 1..flight.len() {
            assert_eq!(run(&[cut]), whole, "cut at {cut}");
        }
        let every: Vec<usize> = (1..flight.len()).collect();
        assert_eq!(run(&every), whole, "one byte at a time");
    }

    /// regression_27: ambiguous SYN-ACKs. Both patterns of real captures:
    /// a spurious second SYN-ACK with another ISN whose data follows the
    /// first, and SYN-ACKs alternating between two ISNs whose data follows
    /// the one the client acknowledged. Each ISN is kept until the server's
    /// data shows which one it continues; the answer is read either way.
    #[test]
    fn regression_27_ambiguous_syn_acks() {
        let flight: &[u8] = include_bytes!("../../tests/data/tls/server-flight-tls12.bin");
        let k = key(1);
        let run = |isns: &[u32], data_isn: u32| {
            let mut t = tls_table(limits(16));
            let mut out = Vec::new();
            t.ingest(
                SegmentIn {
                    seq: 999,
                    ..seg(k, 1, SYN, b"")
                },
                &mut out,
            );
            for (i, &isn) in isns.iter().enumerate() {
                let syn_ack = SegmentIn {
                    dir: Direction::HiToLo,
                    seq: isn,
                    ..seg(k, 2 + i as u64, SYN | ACK, b"")
                };
                t.ingest(syn_ack, &mut out);
            }
            t.ingest(seg(k, 10, ACK, &client_hello(Some("a.example"))), &mut out);
            t.ingest(
                SegmentIn {
                    dir: Direction::HiToLo,
                    seq: data_isn.wrapping_add(1),
                    ..seg(k, 11, ACK, flight)
                },
                &mut out,
            );
            t.drain(&mut out);
            (out, t.stats.server_isn_changed)
        };
        for (isns, data) in [
            (&[5000u32, 900_000_000][..], 5000u32),
            (&[5000, 900_000_000, 5000, 900_000_000], 900_000_000),
            (&[5000, 900_000_000, 5000, 900_000_000], 5000),
            (&[u32::MAX, 77], u32::MAX),
        ] {
            let (out, changed) = run(isns, data);
            assert_eq!(out.len(), 1, "{isns:?} {data}");
            assert_eq!(out[0].negotiated(), Some(Version::TLS12), "{isns:?} {data}");
            assert!(changed >= 1);
        }
        // The client retransmits its SYN with another ISN before any byte:
        // the client's data picks its ISN; no new connection.
        for client_isn in [999u32, 123_456_789] {
            let mut t = tls_table(limits(16));
            let mut out = Vec::new();
            t.ingest(
                SegmentIn {
                    seq: 999,
                    ..seg(k, 1, SYN, b"")
                },
                &mut out,
            );
            t.ingest(
                SegmentIn {
                    seq: 123_456_789,
                    ..seg(k, 2, SYN, b"")
                },
                &mut out,
            );
            let hello = client_hello(Some("a.example"));
            t.ingest(
                SegmentIn {
                    seq: client_isn.wrapping_add(1),
                    ..seg(k, 3, ACK, &hello)
                },
                &mut out,
            );
            t.ingest(
                SegmentIn {
                    dir: Direction::HiToLo,
                    seq: 5001,
                    ..seg(k, 4, ACK, flight)
                },
                &mut out,
            );
            t.drain(&mut out);
            assert_eq!(out.len(), 1, "client ISN {client_isn}");
            assert_eq!(out[0].negotiated(), Some(Version::TLS12));
            assert_eq!(t.stats.reused, 0);
            assert_eq!(t.stats.client_isn_changed, 1);
        }
    }
}
