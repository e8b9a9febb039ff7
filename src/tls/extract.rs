//! From the first bytes of one TCP direction to what that direction opened with.
//!
//! Input: the in-order stream start of one direction (possibly incomplete, and
//! growing between calls) and a reusable scratch buffer. Output: [`Opening`] —
//! a ClientHello, a ServerHello (HelloRetryRequests skipped), or an alert — or
//! a [`TlsError`] that keeps "need more bytes", "not TLS", "TLS but not a
//! handshake start" and "malformed" apart. Layering follows rusticata: the
//! record layer (`record.rs`) turns stream bytes into records and handshake
//! messages; this file judges the messages, with tls-parser for hello bodies.
//! [`OpeningReader`] keeps its position, so a growing stream start is never
//! read twice; SSLv2 hellos (2-byte headers, no records) are read here. Every
//! length is checked before use; nothing here panics on any input.

pub use super::error::{Malformed, TlsError};
use super::fingerprint::Fingerprinter;
use super::hello;
use super::record::{
    CT_ALERT, CT_CHANGE_CIPHER_SPEC, CT_HANDSHAKE, HS_CLIENT_HELLO, HS_HELLO_RETRY_REQUEST_DRAFT,
    HS_SERVER_HELLO, HandshakeReader, Item,
};
use super::summary::{ClientDetail, ClientFacts, ServerAnswer, ServerDetail, SessionId};
use super::version::{Version, negotiated_version};
use std::sync::Arc;

const MAX_SNI_LEN: usize = 255;

/// The special ServerHello.random of a HelloRetryRequest (RFC 8446 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// What a direction's stream opened with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opening {
    ClientHello(ClientFacts),
    /// The answer, and a ServerHello's details when they are kept.
    Answer(ServerAnswer, Option<Arc<ServerDetail>>),
}

/// Reads one direction's opening as its stream start grows: the record
/// position (shared with whatever reads on after the opening, such as the
/// server's certificate) and the version of a HelloRetryRequest already read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpeningReader {
    pub records: HandshakeReader,
    retry: Option<Version>,
}

impl OpeningReader {
    /// A reader of a stream whose TLS starts at offset `start`.
    pub fn starting_at(start: usize) -> Self {
        OpeningReader {
            records: HandshakeReader::starting_at(start),
            retry: None,
        }
    }

    /// Stream offset where TLS starts.
    pub fn start(&self) -> usize {
        self.records.start()
    }

    /// The opening of `stream` (the direction's whole stream start as it now
    /// is), reading on from where the last call stopped.
    ///
    /// `max_message` bounds a handshake message: a longer declared length is
    /// `Malformed(HandshakeTooLarge)` at once rather than a wait that cannot
    /// end. `scratch` joins a message split over records. `fingerprints`:
    /// computes a ClientHello's JA4 and JA3 (once per hello).
    pub fn read(
        &mut self,
        stream: &[u8],
        scratch: &mut Vec<u8>,
        max_message: usize,
        mut fingerprints: Option<&mut Fingerprinter>,
    ) -> Result<Opening, TlsError> {
        if self.records.at_start() {
            let tls = stream.get(self.records.start()..).unwrap_or(&[]);
            match tls.first() {
                None => return Err(TlsError::NeedMore),
                Some(first) if first & 0x80 != 0 => return parse_sslv2(tls, fingerprints),
                Some(_) => {}
            }
        }
        loop {
            let need_more = self.retry.map_or(TlsError::NeedMore, TlsError::AfterRetry);
            let too_long = |_, len, _: &[u8]| len > max_message;
            match self.records.next(stream, scratch, too_long)? {
                Item::NeedMore => return Err(need_more),
                Item::Partial { len, .. } if len > max_message => {
                    return Err(TlsError::Malformed(Malformed::HandshakeTooLarge));
                }
                Item::Partial { .. } => return Err(need_more),
                Item::Message { body, .. } if body.len() > max_message => {
                    return Err(TlsError::Malformed(Malformed::HandshakeTooLarge));
                }
                Item::Message { kind, body } => match kind {
                    HS_CLIENT_HELLO => {
                        return parse_client_hello(body, fingerprints.as_deref_mut())
                            .map(Opening::ClientHello);
                    }
                    HS_SERVER_HELLO => match parse_server_hello(body, fingerprints.as_deref_mut())?
                    {
                        (ServerHello::Hello(version), detail) => {
                            let retried = self.retry.is_some();
                            let answer = ServerAnswer::Hello { version, retried };
                            return Ok(Opening::Answer(answer, detail));
                        }
                        (ServerHello::Retry(version), _) => self.retry = Some(version),
                    },
                    HS_HELLO_RETRY_REQUEST_DRAFT => match body {
                        [hi, lo, ..] => {
                            self.retry = Some(Version(u16::from_be_bytes([*hi, *lo])).canonical());
                        }
                        _ => return Err(TlsError::Malformed(Malformed::ServerHello)),
                    },
                    _ => return Err(TlsError::Malformed(Malformed::UnexpectedMessage)),
                },
                Item::Record { ctype, body } => match (ctype, body) {
                    // A warning (e.g. the unrecognized_name OpenSSL sends
                    // before its ServerHello) rejects nothing: read on.
                    (CT_ALERT, [1, _]) => {}
                    // Only a plaintext alert (two bytes) before any hello is an answer.
                    (CT_ALERT, [level @ 2, description]) => {
                        return Ok(Opening::Answer(
                            ServerAnswer::Alert {
                                level: *level,
                                description: *description,
                            },
                            None,
                        ));
                    }
                    (CT_ALERT, _) => return Err(TlsError::Malformed(Malformed::Alert)),
                    // TLS 1.3 middlebox compatibility after a HelloRetryRequest.
                    (CT_CHANGE_CIPHER_SPEC, _) => {}
                    _ => return Err(TlsError::Malformed(Malformed::UnexpectedMessage)),
                },
            }
        }
    }
}

/// Parses the start of one direction in one go ([`OpeningReader::read`] on
/// a fresh reader).
pub fn parse_opening(
    buf: &[u8],
    scratch: &mut Vec<u8>,
    max_message: usize,
) -> Result<Opening, TlsError> {
    OpeningReader::default().read(
        buf,
        scratch,
        max_message,
        Some(&mut Fingerprinter::with_ja3()),
    )
}

/// A ServerHello, or a HelloRetryRequest (a ServerHello with the special
/// random), and the version it selected.
enum ServerHello {
    Hello(Version),
    Retry(Version),
}

fn parse_client_hello(
    body: &[u8],
    fingerprints: Option<&mut Fingerprinter>,
) -> Result<ClientFacts, TlsError> {
    let hello =
        hello::parse_client_hello(body).ok_or(TlsError::Malformed(Malformed::ClientHello))?;
    let mut facts = ClientFacts {
        hello_version: Version(hello.version),
        supported_versions: None,
        sni: None,
        sslv2_format: false,
        duplicate_extension: false,
        cut: false,
        fingerprint: None,
        raw_fingerprint: None,
        detail: None,
        verdicts: Default::default(),
    };
    let (mut sni_seen, mut versions_seen) = (false, false);
    // One odd extension does not hide the rest.
    for (ext_type, data) in hello.extensions() {
        if ext_type != 0 && ext_type != 43 {
            continue;
        }
        // A repeated extension (RFC 8446 4.2: a server must abort) is an
        // anomaly; the first occurrence is the one a server would have read.
        let seen = if ext_type == 0 {
            &mut sni_seen
        } else {
            &mut versions_seen
        };
        if *seen {
            facts.duplicate_extension = true;
            continue;
        }
        *seen = true;
        if ext_type == 0 {
            if let Some(name) = hello::server_name(data) {
                let name = &name[..name.len().min(MAX_SNI_LEN)];
                // Valid UTF-8 (nearly always ASCII) is checked by the
                // fast path; only a broken name pays for the lossy walk.
                facts.sni = Some(match std::str::from_utf8(name) {
                    Ok(text) => text.to_owned(),
                    Err(_) => String::from_utf8_lossy(name).into_owned(),
                });
            }
        } else if let Some(list) = hello::supported_versions(data) {
            facts.supported_versions = Some(
                list.chunks_exact(2)
                    .map(|v| Version(u16::from_be_bytes([v[0], v[1]])))
                    .collect(),
            );
        }
    }
    // (a hello whose server name can lead to no inventoried flow gets
    // neither fingerprints nor details: it has no event)
    if let Some(f) = fingerprints
        && f.wants(facts.sni.as_deref())
    {
        if f.wants_details() {
            let ciphers = hello.ciphers.len() / 2;
            let size = std::mem::size_of::<ClientDetail>() + 2 * ciphers;
            facts.detail = f.hold_detail(size).map(|held| {
                Arc::new(ClientDetail {
                    ciphers: hello.cipher_suites().collect(),
                    session_id: SessionId::of(hello.session_id).unwrap_or_default(),
                    held,
                })
            });
        }
        let exts = hello.extensions.unwrap_or(&[]);
        let (fp, raw) = f.fingerprint(hello.version, hello.cipher_suites(), exts);
        facts.fingerprint = Some(fp);
        facts.raw_fingerprint = raw;
        facts.verdicts = f.take_verdicts();
    }
    Ok(facts)
}

/// A ServerHello's version (or a HelloRetryRequest's), and its details
/// when `fingerprints` keeps them.
fn parse_server_hello(
    body: &[u8],
    fingerprints: Option<&mut Fingerprinter>,
) -> Result<(ServerHello, Option<Arc<ServerDetail>>), TlsError> {
    let malformed = TlsError::Malformed(Malformed::ServerHello);
    let Some(&[hi, lo]) = body.get(..2).and_then(|v| <&[u8; 2]>::try_from(v).ok()) else {
        return Err(malformed);
    };
    let version = Version(u16::from_be_bytes([hi, lo]));
    if !(0x0300..=0x0303).contains(&version.0) {
        // Drafts (0x7f..) and anything else: the version field is all we can trust.
        return Ok((ServerHello::Hello(version.canonical()), None));
    }
    let (_, hello) = tls_parser::parse_tls_handshake_server_hello(body).map_err(|_| malformed)?;
    let mut selected = None;
    let detailed = fingerprints.as_ref().is_some_and(|f| f.wants_details());
    let (mut group, mut alpn, mut psk) = (None, None, false);
    let mut exts = hello.ext.unwrap_or(&[]);
    while exts.len() >= 4 {
        let ext_type = u16::from_be_bytes([exts[0], exts[1]]);
        let ext_len = usize::from(u16::from_be_bytes([exts[2], exts[3]]));
        let Some(data) = exts.get(4..4 + ext_len) else {
            return Err(malformed);
        };
        if ext_type == 43 {
            match data {
                [a, b] => selected = Some(Version(u16::from_be_bytes([*a, *b]))),
                _ => return Err(malformed),
            }
        } else if detailed {
            match (ext_type, data) {
                // key_share: the group, then the key (a HelloRetryRequest: the group alone).
                (51, [a, b, ..]) => group = Some(u16::from_be_bytes([*a, *b])),
                // ALPN: a list holding the one protocol selected.
                (16, [_, _, n, name @ ..]) => alpn = name.get(..usize::from(*n)),
                (41, _) => psk = true,
                _ => {}
            }
        }
        exts = &exts[4 + ext_len..];
    }
    let negotiated = negotiated_version(version, selected);
    if hello.random == HRR_RANDOM {
        return Ok((ServerHello::Retry(negotiated), None));
    }
    let detail = fingerprints.filter(|_| detailed).and_then(|f| {
        let alpn: Option<Box<str>> = alpn.map(|a| String::from_utf8_lossy(a).into());
        let size = std::mem::size_of::<ServerDetail>() + alpn.as_ref().map_or(0, |a| a.len());
        let held = f.hold_detail(size)?;
        Some(Arc::new(ServerDetail {
            hello_version: version.0,
            selected: selected.map(|v| v.0),
            cipher: hello.cipher.0,
            group,
            alpn,
            psk,
            session_id: hello.session_id.and_then(SessionId::of).unwrap_or_default(),
            held,
        }))
    });
    Ok((ServerHello::Hello(negotiated), detail))
}

/// What the first bytes of a direction show when the capture cut them (snap
/// length): a ClientHello's own version field (11 bytes in: record header,
/// handshake header, version), that a ServerHello came, or a whole alert. The
/// facts beyond (supported_versions, SNI, the server's real choice in TLS 1.3)
/// are unknown, so a cut hello is marked `cut`.
pub fn parse_cut_opening(buf: &[u8]) -> Option<Opening> {
    match *buf {
        [
            CT_HANDSHAKE,
            3,
            minor,
            _,
            _,
            HS_CLIENT_HELLO,
            _,
            _,
            _,
            hi,
            lo,
            ..,
        ] if minor <= 4 => Some(Opening::ClientHello(ClientFacts {
            hello_version: Version(u16::from_be_bytes([hi, lo])),
            supported_versions: None,
            sni: None,
            sslv2_format: false,
            duplicate_extension: false,
            cut: true,
            fingerprint: None,
            raw_fingerprint: None,
            detail: None,
            verdicts: Default::default(),
        })),
        [CT_HANDSHAKE, 3, minor, _, _, HS_SERVER_HELLO, ..] if minor <= 4 && buf.len() >= 11 => {
            Some(Opening::Answer(ServerAnswer::CutHello, None))
        }
        [CT_ALERT, 3, minor, 0, 2, level @ 1..=2, description, ..] if minor <= 4 && level == 2 => {
            Some(Opening::Answer(
                ServerAnswer::Alert { level, description },
                None,
            ))
        }
        _ => None,
    }
}

/// SSLv2 record format (2-byte header): a CLIENT-HELLO, possibly carrying a
/// TLS version (the "SSLv2-compatible ClientHello" of RFC 5246 E.2), or an
/// SSLv2 SERVER-HELLO. A CLIENT-HELLO's fingerprints take its version field
/// and the cipher specs a TLS server reads (those whose first byte is 0, as
/// RFC 5246 E.2 maps them); it has no SNI and no extensions.
fn parse_sslv2(buf: &[u8], fingerprints: Option<&mut Fingerprinter>) -> Result<Opening, TlsError> {
    const NEED: TlsError = TlsError::NeedMore;
    let bad = TlsError::Malformed(Malformed::Sslv2);
    let [b0, b1, rest @ ..] = buf else {
        return Err(NEED);
    };
    let len = (usize::from(b0 & 0x7f) << 8) | usize::from(*b1);
    let Some(&msg_type) = rest.first() else {
        return Err(NEED);
    };
    match msg_type {
        1 => {}
        4 => return parse_sslv2_server_hello(rest, len),
        _ => return Err(TlsError::NotTls),
    }
    // CLIENT-HELLO: type(1) version(2) cipher_len(2) sid_len(2) challenge_len(2)
    let Some(h) = rest.get(..9) else {
        let plausible = rest.get(1).is_none_or(|&m| m <= 3);
        return Err(if plausible { NEED } else { TlsError::NotTls });
    };
    let version = u16::from_be_bytes([h[1], h[2]]);
    if !(version == 0x0002 || (0x0300..=0x0304).contains(&version)) {
        return Err(TlsError::NotTls);
    }
    let cipher_len = usize::from(u16::from_be_bytes([h[3], h[4]]));
    let sid_len = usize::from(u16::from_be_bytes([h[5], h[6]]));
    let challenge_len = usize::from(u16::from_be_bytes([h[7], h[8]]));
    if cipher_len == 0
        || cipher_len % 3 != 0
        || sid_len > 32
        || !(16..=32).contains(&challenge_len)
        || len != 9 + cipher_len + sid_len + challenge_len
    {
        return Err(bad);
    }
    if rest.len() < len {
        return Err(NEED);
    }
    let specs = rest.get(9..9 + cipher_len).unwrap_or(&[]);
    let tls_ciphers = specs
        .chunks_exact(3)
        .filter(|c| c[0] == 0)
        .map(|c| u16::from_be_bytes([c[1], c[2]]));
    let (fingerprint, raw_fingerprint, verdicts) = match fingerprints {
        Some(f) => {
            let (fp, raw) = f.fingerprint(version, tls_ciphers, &[]);
            (Some(fp), raw, f.take_verdicts())
        }
        None => (None, None, Default::default()),
    };
    Ok(Opening::ClientHello(ClientFacts {
        hello_version: Version(version),
        supported_versions: None,
        sni: None,
        sslv2_format: true,
        duplicate_extension: false,
        cut: false,
        fingerprint,
        raw_fingerprint,
        detail: None,
        verdicts,
    }))
}

fn parse_sslv2_server_hello(rest: &[u8], len: usize) -> Result<Opening, TlsError> {
    // SERVER-HELLO: type(1) session_id_hit(1) cert_type(1) version(2) ...
    let Some(h) = rest.get(..5) else {
        return Err(TlsError::NeedMore);
    };
    let version = u16::from_be_bytes([h[3], h[4]]);
    if version != 0x0002 || len < 11 {
        return Err(TlsError::NotTls);
    }
    Ok(Opening::Answer(
        ServerAnswer::Hello {
            version: Version::SSL2,
            retried: false,
        },
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::craft::{extension as ext, handshake as hs, record};

    const MAX: usize = 16384;

    fn parse(b: &[u8]) -> Result<Opening, TlsError> {
        parse_opening(b, &mut Vec::new(), MAX)
    }

    fn client_hello_body(version: u16, exts: &[Vec<u8>]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&[0x11; 32]); // random
        b.push(0); // session id
        b.extend_from_slice(&[0, 4, 0x13, 0x01, 0x00, 0x2f]); // ciphers
        b.extend_from_slice(&[1, 0]); // compression
        let all: Vec<u8> = exts.concat();
        if !exts.is_empty() {
            b.extend_from_slice(&(all.len() as u16).to_be_bytes());
            b.extend_from_slice(&all);
        }
        b
    }

    fn sni_ext(name: &str) -> Vec<u8> {
        let n = name.len();
        let mut d = ((n + 3) as u16).to_be_bytes().to_vec();
        d.push(0);
        d.extend_from_slice(&(n as u16).to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        ext(0, &d)
    }

    fn versions_ext(vs: &[u16]) -> Vec<u8> {
        let mut d = vec![(vs.len() * 2) as u8];
        for v in vs {
            d.extend_from_slice(&v.to_be_bytes());
        }
        ext(43, &d)
    }

    fn server_hello_body(version: u16, random: [u8; 32], exts: &[Vec<u8>]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&random);
        b.push(0);
        b.extend_from_slice(&[0x13, 0x01, 0]);
        let all: Vec<u8> = exts.concat();
        b.extend_from_slice(&(all.len() as u16).to_be_bytes());
        b.extend_from_slice(&all);
        b
    }

    fn read_detailed(f: &mut Fingerprinter, bytes: &[u8]) -> Opening {
        let mut scratch = Vec::new();
        OpeningReader::default()
            .read(bytes, &mut scratch, MAX, Some(f))
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// The details the richer event layouts show: the client's cipher list
    /// and session ID; the server's suite, key-share group, ALPN, PSK and
    /// session ID; all within the table's budget, which a drop returns.
    #[test]
    fn hello_details_kept_within_the_budget() {
        let mut f = Fingerprinter::with_ja3().with_details(4096);
        let mut body = client_hello_body(0x0303, &[sni_ext("a.example")]);
        // A session ID of three bytes in place of the empty one.
        body.splice(34..35, [3, 7, 8, 9]);
        let bytes = record(22, 0x0301, &hs(1, &body));
        let Opening::ClientHello(c) = read_detailed(&mut f, &bytes) else {
            panic!("a hello");
        };
        let d = c.detail.as_deref().expect("details kept");
        assert_eq!(&*d.ciphers, &[0x1301, 0x002f]);
        assert_eq!(d.session_id.as_slice(), &[7, 8, 9]);

        let mut alpn = vec![0, 3, 2];
        alpn.extend_from_slice(b"h2");
        let sh = server_hello_body(
            0x0303,
            [0x22; 32],
            &[
                ext(43, &[3, 4]),
                ext(51, &[0, 0x1d, 0, 32]),
                ext(16, &alpn),
                ext(41, &[0, 0]),
            ],
        );
        let bytes = record(22, 0x0303, &hs(2, &sh));
        let Opening::Answer(ServerAnswer::Hello { version, .. }, Some(s)) =
            read_detailed(&mut f, &bytes)
        else {
            panic!("a detailed answer");
        };
        assert_eq!(version, Version::TLS13);
        assert_eq!(
            (s.hello_version, s.selected, s.cipher, s.group, s.psk),
            (0x0303, Some(0x0304), 0x1301, Some(0x1d), true)
        );
        assert_eq!(s.alpn.as_deref(), Some("h2"));
        assert!(s.session_id.as_slice().is_empty());

        // The budget: nothing left for a second hello; counted, and the
        // hello itself still read. Dropping the first's details frees room.
        let one = std::mem::size_of::<ClientDetail>() + 2 * 2;
        let mut small = Fingerprinter::ja4_only().with_details(one + 10);
        let bytes = record(22, 0x0301, &hs(1, &body));
        let Opening::ClientHello(first) = read_detailed(&mut small, &bytes) else {
            panic!("a hello");
        };
        assert!(first.detail.is_some());
        let Opening::ClientHello(second) = read_detailed(&mut small, &bytes) else {
            panic!("a hello");
        };
        assert!(second.detail.is_none() && second.sni.is_some());
        assert_eq!(small.details_dropped, 1);
        drop(first);
        let Opening::ClientHello(third) = read_detailed(&mut small, &bytes) else {
            panic!("a hello");
        };
        assert!(third.detail.is_some());
        // Without details wanted, none are kept and none counted.
        let mut plain = Fingerprinter::with_ja3();
        let Opening::ClientHello(c) = read_detailed(&mut plain, &bytes) else {
            panic!("a hello");
        };
        assert!(c.detail.is_none() && plain.details_dropped == 0);
    }

    /// Resumption as Zeek judges it: TLS 1.3 by an accepted pre-shared key;
    /// before, by the server echoing the client's non-empty session ID.
    #[test]
    fn resumed_from_the_details() {
        let mut f = Fingerprinter::ja4_only().with_details(1 << 20);
        let hello = |sid: &[u8], f: &mut Fingerprinter| {
            let mut body = client_hello_body(0x0303, &[]);
            let mut s = vec![sid.len() as u8];
            s.extend_from_slice(sid);
            body.splice(34..35, s);
            match read_detailed(f, &record(22, 0x0301, &hs(1, &body))) {
                Opening::ClientHello(c) => c,
                other => panic!("{other:?}"),
            }
        };
        let answer = |sid: &[u8], exts: &[Vec<u8>], f: &mut Fingerprinter| {
            let mut body = server_hello_body(0x0303, [0x33; 32], exts);
            let mut s = vec![sid.len() as u8];
            s.extend_from_slice(sid);
            body.splice(34..35, s);
            match read_detailed(f, &record(22, 0x0303, &hs(2, &body))) {
                Opening::Answer(a, d) => (a, d),
                other => panic!("{other:?}"),
            }
        };
        let summary = |c: ClientFacts, (a, d): (ServerAnswer, Option<Arc<ServerDetail>>)| {
            let mut s = crate::tls::HandshakeSummary::hello_for_test(
                [10, 0, 0, 1],
                [10, 0, 0, 2],
                0x0303,
                None,
            );
            s.client = Some(c);
            s.answer = Some(a);
            s.server = d;
            s.resumed()
        };
        let id = [5u8; 32];
        let c = hello(&id, &mut f);
        assert_eq!(summary(c, answer(&id, &[], &mut f)), Some(true));
        let c = hello(&id, &mut f);
        assert_eq!(summary(c, answer(&[6; 32], &[], &mut f)), Some(false));
        let c = hello(&[], &mut f);
        assert_eq!(summary(c, answer(&[], &[], &mut f)), Some(false));
        // TLS 1.3 echoes the session ID always: only the PSK counts.
        let v13 = ext(43, &[3, 4]);
        let c = hello(&id, &mut f);
        assert_eq!(
            summary(c, answer(&id, std::slice::from_ref(&v13), &mut f)),
            Some(false)
        );
        let c = hello(&id, &mut f);
        let psk = ext(41, &[0, 0]);
        assert_eq!(summary(c, answer(&id, &[v13, psk], &mut f)), Some(true));
        // Without the server's details, resumption is not known.
        let c = hello(&id, &mut f);
        let (a, _) = answer(&id, &[], &mut f);
        assert_eq!(summary(c, (a, None)), None);
    }

    #[test]
    fn client_hello_tls13_with_grease_and_sni() {
        let body = client_hello_body(
            0x0303,
            &[
                ext(0x1a1a, &[]),
                sni_ext("Acct.Blob.Core.Windows.Net"),
                versions_ext(&[0x2a2a, 0x0304, 0x0303]),
            ],
        );
        let bytes = record(22, 0x0301, &hs(1, &body));
        let Ok(Opening::ClientHello(f)) = parse(&bytes) else {
            panic!("{:?}", parse(&bytes));
        };
        assert_eq!(f.sni.as_deref(), Some("Acct.Blob.Core.Windows.Net"));
        assert_eq!(f.max_version(), Version::TLS13);
        assert_eq!(f.hello_version, Version::TLS12);
    }

    #[test]
    fn client_hello_every_prefix_needs_more() {
        let body = client_hello_body(0x0301, &[sni_ext("a.blob.core.windows.net")]);
        let bytes = record(22, 0x0301, &hs(1, &body));
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Err(TlsError::NeedMore), "cut {cut}");
        }
        assert!(matches!(parse(&bytes), Ok(Opening::ClientHello(_))));
    }

    #[test]
    fn client_hello_split_over_records() {
        let msg = hs(1, &client_hello_body(0x0302, &[sni_ext("x.example")]));
        for split in [1, 3, 4, 5, 40, msg.len() - 1] {
            let mut bytes = record(22, 0x0301, &msg[..split]);
            bytes.extend(record(22, 0x0301, &msg[split..]));
            let Ok(Opening::ClientHello(f)) = parse(&bytes) else {
                panic!("split {split}: {:?}", parse(&bytes));
            };
            assert_eq!(f.max_version(), Version::TLS11);
            assert_eq!(f.sni.as_deref(), Some("x.example"));
        }
    }

    #[test]
    fn malformed_extension_does_not_hide_versions() {
        // SNI list length lies; supported_versions after it must still count.
        let bad_sni = ext(0, &[0, 9, 0, 0, 3, b'a']);
        let body = client_hello_body(0x0303, &[bad_sni, versions_ext(&[0x0304])]);
        let bytes = record(22, 0x0301, &hs(1, &body));
        let Ok(Opening::ClientHello(f)) = parse(&bytes) else {
            panic!()
        };
        assert_eq!(f.max_version(), Version::TLS13);
        assert_eq!(f.sni, None);
    }

    #[test]
    fn server_hello_versions() {
        let tls12 = record(22, 0x0303, &hs(2, &server_hello_body(0x0303, [7; 32], &[])));
        assert_eq!(
            parse(&tls12),
            Ok(Opening::Answer(
                ServerAnswer::Hello {
                    version: Version::TLS12,
                    retried: false
                },
                None
            ))
        );
        let tls13 = record(
            22,
            0x0303,
            &hs(2, &server_hello_body(0x0303, [7; 32], &[ext(43, &[3, 4])])),
        );
        assert_eq!(
            parse(&tls13),
            Ok(Opening::Answer(
                ServerAnswer::Hello {
                    version: Version::TLS13,
                    retried: false
                },
                None
            ))
        );
        let tls10 = record(22, 0x0301, &hs(2, &server_hello_body(0x0301, [7; 32], &[])));
        assert_eq!(
            parse(&tls10),
            Ok(Opening::Answer(
                ServerAnswer::Hello {
                    version: Version::TLS10,
                    retried: false
                },
                None
            ))
        );
    }

    #[test]
    fn hello_retry_request_is_not_the_answer() {
        let hrr = record(
            22,
            0x0303,
            &hs(
                2,
                &server_hello_body(0x0303, HRR_RANDOM, &[ext(43, &[3, 4]), ext(51, &[0, 0x1d])]),
            ),
        );
        // The HRR alone: more is needed, and its version is kept in case
        // nothing follows (regression_12: hello_retry was lost).
        assert_eq!(parse(&hrr), Err(TlsError::AfterRetry(Version::TLS13)));
        let mut full = hrr.clone();
        full.extend(record(20, 0x0303, &[1]));
        full.extend(record(
            22,
            0x0303,
            &hs(2, &server_hello_body(0x0303, [9; 32], &[ext(43, &[3, 4])])),
        ));
        assert_eq!(
            parse(&full),
            Ok(Opening::Answer(
                ServerAnswer::Hello {
                    version: Version::TLS13,
                    retried: true
                },
                None
            ))
        );
    }

    #[test]
    fn alert_answer() {
        let bytes = record(21, 0x0301, &[2, 70]);
        assert_eq!(
            parse(&bytes),
            Ok(Opening::Answer(
                ServerAnswer::Alert {
                    level: 2,
                    description: 70
                },
                None
            ))
        );
        assert_eq!(
            parse(&record(21, 0x0303, &[2, 70, 0])),
            Err(TlsError::Malformed(Malformed::Alert))
        );
    }

    #[test]
    fn not_tls() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(TlsError::NotTls));
        assert_eq!(parse(b"SSH-2.0-OpenSSH"), Err(TlsError::NotTls));
        assert_eq!(parse(&[0x16, 0x02]), Err(TlsError::NotTls));
        assert_eq!(parse(&[0x16, 0x03, 0x09]), Err(TlsError::NotTls));
        assert_eq!(
            parse(&[0x16, 0x03, 0x01, 0xff, 0xff]),
            Err(TlsError::NotTls)
        );
        assert_eq!(parse(&[0x00; 64]), Err(TlsError::NotTls));
    }

    /// regression_12: a warning alert (unrecognized_name) before the
    /// ServerHello is not a rejection; a fatal one is.
    #[test]
    fn warning_alert_is_not_a_rejection() {
        let warning = record(21, 0x0303, &[1, 112]);
        assert_eq!(parse(&warning), Err(TlsError::NeedMore));
        let mut both = warning.clone();
        both.extend(record(
            22,
            0x0303,
            &hs(2, &server_hello_body(0x0301, [7; 32], &[])),
        ));
        assert_eq!(
            parse(&both),
            Ok(Opening::Answer(
                ServerAnswer::Hello {
                    version: Version::TLS10,
                    retried: false
                },
                None
            ))
        );
        assert_eq!(
            parse(&record(21, 0x0303, &[2, 70])),
            Ok(Opening::Answer(
                ServerAnswer::Alert {
                    level: 2,
                    description: 70
                },
                None
            ))
        );
    }

    /// regression_12: a repeated server_name or supported_versions is an
    /// anomaly; the first occurrence counts.
    #[test]
    fn duplicate_extensions_keep_the_first() {
        let sni = |name: &[u8]| {
            let mut entry = vec![0u8];
            entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
            entry.extend_from_slice(name);
            let mut list = (entry.len() as u16).to_be_bytes().to_vec();
            list.extend(entry);
            ext(0, &list)
        };
        let body = client_hello_body(
            0x0301,
            &[
                sni(b"first.example"),
                ext(43, &[2, 3, 1]),
                sni(b"second.example"),
                ext(43, &[2, 3, 4]),
            ],
        );
        let Ok(Opening::ClientHello(f)) = parse(&record(22, 0x0301, &hs(1, &body))) else {
            panic!("not a hello");
        };
        assert_eq!(f.sni.as_deref(), Some("first.example"));
        assert_eq!(f.supported_versions, Some(vec![Version::TLS10]));
        assert!(f.duplicate_extension);
    }

    /// regression_12: what a snap-length-cut hello shows.
    #[test]
    fn cut_openings() {
        let body = client_hello_body(0x0301, &[]);
        let hello = record(22, 0x0301, &hs(1, &body));
        let Some(Opening::ClientHello(f)) = parse_cut_opening(&hello[..30]) else {
            panic!("not read");
        };
        assert_eq!((f.hello_version, f.cut), (Version::TLS10, true));
        assert_eq!(parse_cut_opening(&hello[..10]), None);
        let sh = record(22, 0x0303, &hs(2, &server_hello_body(0x0303, [7; 32], &[])));
        assert_eq!(
            parse_cut_opening(&sh[..20]),
            Some(Opening::Answer(ServerAnswer::CutHello, None))
        );
        assert_eq!(
            parse_cut_opening(&record(21, 0x0303, &[2, 70])),
            Some(Opening::Answer(
                ServerAnswer::Alert {
                    level: 2,
                    description: 70
                },
                None
            ))
        );
        assert_eq!(parse_cut_opening(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn mid_stream() {
        assert_eq!(
            parse(&record(23, 0x0303, &[1, 2, 3])),
            Err(TlsError::MidStream)
        );
        assert_eq!(parse(&record(20, 0x0303, &[1])), Err(TlsError::MidStream));
    }

    #[test]
    fn oversized_message_fails_fast() {
        let bytes = record(22, 0x0301, &[1, 0xff, 0xff, 0xff, 3, 1]);
        assert_eq!(
            parse(&bytes),
            Err(TlsError::Malformed(Malformed::HandshakeTooLarge))
        );
    }

    #[test]
    fn unexpected_first_message() {
        let bytes = record(22, 0x0303, &hs(11, &[0, 0, 0]));
        assert_eq!(
            parse(&bytes),
            Err(TlsError::Malformed(Malformed::UnexpectedMessage))
        );
    }

    #[test]
    fn sslv2_compatible_client_hello() {
        // len, CLIENT-HELLO, version 3.1, 3 ciphers (9 bytes), no sid, 16-byte challenge
        let mut body = vec![1, 0x03, 0x01, 0, 9, 0, 0, 0, 16];
        body.extend_from_slice(&[0, 0, 0x2f, 0, 0, 0x35, 0x01, 0x00, 0x80]);
        body.extend_from_slice(&[0xaa; 16]);
        let mut bytes = vec![0x80 | (body.len() >> 8) as u8, body.len() as u8];
        bytes.extend_from_slice(&body);
        let Ok(Opening::ClientHello(f)) = parse(&bytes) else {
            panic!("{:?}", parse(&bytes))
        };
        assert!(f.sslv2_format);
        assert_eq!(f.max_version(), Version::TLS10);
        // Fingerprinted by its version and the TLS cipher specs (the SSLv2
        // spec 010080 is not one); no SNI, no extensions.
        let fp = f.fingerprint.expect("fingerprinted");
        assert_eq!(fp.ja4(), "t10i020000_f54dd463d39b_000000000000");
        assert_eq!(
            fp.ja3_hash().as_deref(),
            Some("dac4920d4335e769327dbf4e1b759e15")
        );
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Err(TlsError::NeedMore), "cut {cut}");
        }
    }

    #[test]
    fn sslv3_client_hello() {
        let bytes = record(22, 0x0300, &hs(1, &client_hello_body(0x0300, &[])));
        let Ok(Opening::ClientHello(f)) = parse(&bytes) else {
            panic!()
        };
        assert_eq!(f.max_version(), Version::SSL3);
        assert_eq!(f.supported_versions, None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u32;
        for len in 0..300 {
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                v.push(seed as u8);
            }
            if let Some(b) = v.first_mut() {
                *b = 0x16;
            }
            if v.len() > 2 {
                v[1] = 3;
                v[2] = 1;
            }
            let _ = parse(&v);
        }
    }
}
