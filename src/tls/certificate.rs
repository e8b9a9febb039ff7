//! The server's certificate, from the clear-text handshake of SSL 3.0 to TLS 1.2.
//!
//! Input: a server's stream start whose ServerHello negotiated SSL 3.0 to
//! TLS 1.2 (TLS 1.3 encrypts the certificate), read on through the record
//! layer from just after the ServerHello (the [`HandshakeReader`] position
//! the opening left), and a reusable scratch buffer. Output: the DNS names of
//! the first (leaf) certificate of the Certificate message that follows the
//! ServerHello — subject common names and subjectAltName dNSNames, parsed by
//! `x509-parser` — or `Ok(None)` when the server sent no certificate (an
//! abbreviated handshake resuming a session, an anonymous or PSK suite, an
//! empty list), or a [`TlsError`]: `NeedMore` until the leaf is complete,
//! `Malformed(Certificate)` for a broken message or certificate. Only the leaf
//! is read, so the rest of the chain never has to arrive. Bounds: the leaf is
//! at most `max_message` bytes (else `Malformed(HandshakeTooLarge)` at once);
//! the names are bounded by the leaf's size. Nothing here panics on any input.
//! [`CertificateCache`] lets a worker parse each distinct leaf once.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use x509_parser::extensions::GeneralName;

use super::error::{Malformed, TlsError};
use super::extract::{Opening, OpeningReader};
use super::record::{HS_CERTIFICATE, HandshakeReader, Item};
use super::summary::{ServerAnswer, ServerCertificate};

/// Longest DNS name (RFC 1035); longer "names" are not host names and are skipped.
const MAX_NAME_LEN: usize = 255;

/// Reads, in one go, the leaf certificate that follows the ServerHello in
/// `buf` (a server's stream start from its first byte).
pub fn parse_server_certificate(
    buf: &[u8],
    scratch: &mut Vec<u8>,
    max_message: usize,
) -> Result<Option<ServerCertificate>, TlsError> {
    let mut records = after_server_hello(buf, scratch, max_message)?;
    match find_leaf(&mut records, buf, scratch, max_message)? {
        Some(der) => names_of(der)
            .map(Some)
            .ok_or(TlsError::Malformed(Malformed::Certificate)),
        None => Ok(None),
    }
}

/// The record position just after the ServerHello of `buf`.
fn after_server_hello(
    buf: &[u8],
    scratch: &mut Vec<u8>,
    max_message: usize,
) -> Result<HandshakeReader, TlsError> {
    let mut opening = OpeningReader::default();
    match opening.read(buf, scratch, max_message, None) {
        Ok(Opening::Answer(ServerAnswer::Hello { .. }, _)) => Ok(opening.records),
        Ok(_) => Err(TlsError::Malformed(Malformed::UnexpectedMessage)),
        Err(TlsError::AfterRetry(_)) => Err(TlsError::NeedMore),
        Err(e) => Err(e),
    }
}

/// Leaf certificates already parsed, by a keyed hash of their DER bytes and
/// their length: a sensor sees the same few server certificates over and over
/// (as Zeek's X.509 analyzer caches by certificate hash). A worker's own; at
/// most [`CertificateCache::CAPACITY`] entries, the oldest replaced first, so
/// at most that many leaves' names (each bounded by the stream cap) are held.
/// Unparseable leaves are remembered too: a repeated broken certificate costs
/// one parse.
pub struct CertificateCache {
    hasher: ahash::RandomState,
    map: HashMap<(u64, usize), Option<Arc<ServerCertificate>>, ahash::RandomState>,
    order: VecDeque<(u64, usize)>,
}

impl Default for CertificateCache {
    fn default() -> Self {
        CertificateCache {
            hasher: ahash::RandomState::new(),
            map: HashMap::with_hasher(ahash::RandomState::new()),
            order: VecDeque::new(),
        }
    }
}

impl CertificateCache {
    pub const CAPACITY: usize = 128;

    /// The leaf certificate's names, reading `stream` (the server's stream
    /// start) on from `records`, which stands just after the ServerHello and
    /// moves on only past whole messages; each distinct leaf is parsed once.
    pub fn read(
        &mut self,
        records: &mut HandshakeReader,
        stream: &[u8],
        scratch: &mut Vec<u8>,
        max_message: usize,
    ) -> Result<Option<Arc<ServerCertificate>>, TlsError> {
        let Some(der) = find_leaf(records, stream, scratch, max_message)? else {
            return Ok(None);
        };
        let key = (self.hasher.hash_one(der), der.len());
        let parsed = match self.map.get(&key) {
            Some(hit) => hit.clone(),
            None => {
                let parsed = names_of(der).map(Arc::new);
                if self.order.len() >= Self::CAPACITY
                    && let Some(old) = self.order.pop_front()
                {
                    self.map.remove(&old);
                }
                self.order.push_back(key);
                self.map.insert(key, parsed.clone());
                parsed
            }
        };
        parsed
            .map(Some)
            .ok_or(TlsError::Malformed(Malformed::Certificate))
    }
}

/// The leaf's DER bytes, from the message after the ServerHello, or `None`
/// when that message is not a Certificate (ServerKeyExchange,
/// ServerHelloDone, ...) or a record of another type comes first
/// (ChangeCipherSpec of a resumed session, an alert): no certificate follows.
fn find_leaf<'a>(
    records: &mut HandshakeReader,
    stream: &'a [u8],
    scratch: &'a mut Vec<u8>,
    max_message: usize,
) -> Result<Option<&'a [u8]>, TlsError> {
    // Any message but a Certificate, or a Certificate whose leaf is whole
    // (or broken), decides from its start.
    let judged = |kind, len, head: &[u8]| {
        kind != HS_CERTIFICATE || !matches!(leaf(head, len, max_message), Err(TlsError::NeedMore))
    };
    let (body, len) = match records.next(stream, scratch, judged)? {
        Item::NeedMore => return Err(TlsError::NeedMore),
        Item::Message {
            kind: HS_CERTIFICATE,
            body,
        } => (body, body.len()),
        Item::Partial {
            kind: HS_CERTIFICATE,
            len,
            head,
        } => (head, len),
        Item::Message { .. } | Item::Partial { .. } | Item::Record { .. } => return Ok(None),
    };
    Ok(leaf(body, len, max_message)?.and_then(|r| body.get(r)))
}

/// Where the leaf is in a Certificate message body (`len` bytes declared,
/// `body` the part present): certificate_list<0..2^24-1> of ASN.1Cert<1..2^24-1>.
fn leaf(body: &[u8], len: usize, max: usize) -> Result<Option<Range<usize>>, TlsError> {
    let bad = TlsError::Malformed(Malformed::Certificate);
    let u24 = |b: &[u8]| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
    let Some(list) = body.get(..3).map(u24) else {
        return Err(TlsError::NeedMore);
    };
    if list + 3 != len {
        return Err(bad);
    }
    if list == 0 {
        return Ok(None); // no certificate (RFC 5246 7.4.2 allows none only for anonymous suites)
    }
    let Some(cert_len) = body.get(3..6).map(u24) else {
        return Err(TlsError::NeedMore);
    };
    if cert_len == 0 || cert_len + 3 > list {
        return Err(bad);
    }
    if cert_len > max {
        return Err(TlsError::Malformed(Malformed::HandshakeTooLarge));
    }
    if body.len() < 6 + cert_len {
        return Err(TlsError::NeedMore);
    }
    Ok(Some(6..6 + cert_len))
}

/// Subject common names and subjectAltName dNSNames of a DER certificate.
fn names_of(der: &[u8]) -> Option<ServerCertificate> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut names = String::new();
    let mut add = |name: &str| {
        if !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.contains('\0') {
            names.push_str(name);
            names.push('\0');
        }
    };
    for cn in cert.subject().iter_common_name() {
        if let Ok(name) = cn.as_str() {
            add(name);
        }
    }
    // A broken or repeated subjectAltName hides only the alternative names.
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for general in &san.value.general_names {
            if let GeneralName::DNSName(name) = general {
                add(name);
            }
        }
    }
    Some(ServerCertificate::from_nul_separated(names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::craft::{handshake as hs, record};

    /// A self-signed certificate made by `openssl req -x509` (see
    /// tests/data/tls/README.md): CN `*.blob.core.windows.net`, SANs
    /// `*.blob.core.windows.net`, `*.privatelink.blob.core.windows.net`.
    const BLOB_CERT: &[u8] = include_bytes!("../../tests/data/tls/blob-cert.der");
    /// The server's first bytes of a real TLS 1.2 handshake (OpenSSL
    /// s_server, no SNI): ServerHello, Certificate, ServerKeyExchange, ...
    const SERVER_FLIGHT: &[u8] = include_bytes!("../../tests/data/tls/server-flight-tls12.bin");
    /// The same for a resumed TLS 1.2 session: ServerHello, ChangeCipherSpec, Finished.
    const RESUMED_FLIGHT: &[u8] =
        include_bytes!("../../tests/data/tls/server-flight-tls12-resumed.bin");

    const MAX: usize = 16384;

    fn parse(b: &[u8]) -> Result<Option<ServerCertificate>, TlsError> {
        parse_server_certificate(b, &mut Vec::new(), MAX)
    }

    /// [`CertificateCache::read`] of a server flight from its first byte.
    fn read(
        cache: &mut CertificateCache,
        flight: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Result<Option<Arc<ServerCertificate>>, TlsError> {
        let mut records = after_server_hello(flight, scratch, MAX)?;
        cache.read(&mut records, flight, scratch, MAX)
    }

    fn u24(n: usize) -> [u8; 3] {
        [(n >> 16) as u8, (n >> 8) as u8, n as u8]
    }

    fn certificate_msg(certs: &[&[u8]]) -> Vec<u8> {
        let list: Vec<u8> = certs
            .iter()
            .flat_map(|c| u24(c.len()).into_iter().chain(c.iter().copied()))
            .collect();
        let mut body = u24(list.len()).to_vec();
        body.extend(list);
        hs(HS_CERTIFICATE, &body)
    }

    /// The CN, then the SANs (the CN's name again first).
    fn blob_names() -> Vec<String> {
        [
            "*.blob.core.windows.net",
            "*.blob.core.windows.net",
            "*.privatelink.blob.core.windows.net",
        ]
        .map(String::from)
        .to_vec()
    }

    fn names(c: &ServerCertificate) -> Vec<String> {
        c.names().map(String::from).collect()
    }

    const SERVER_HELLO: [u8; 42] = {
        let mut b = [0u8; 42];
        b[0] = 3;
        b[1] = 3; // version, random (zeros), empty session id, suite, compression
        b[36] = 0x00;
        b[37] = 0x2f;
        b
    };

    #[test]
    fn certificate_real_server_flight() {
        let Ok(Some(c)) = parse(SERVER_FLIGHT) else {
            panic!("{:?}", parse(SERVER_FLIGHT));
        };
        assert_eq!(names(&c), blob_names());
        // Every prefix that ends before the leaf is complete needs more.
        let mut complete = None;
        for cut in 0..SERVER_FLIGHT.len() {
            match parse(&SERVER_FLIGHT[..cut]) {
                Err(TlsError::NeedMore) => assert!(complete.is_none(), "cut {cut}"),
                Ok(Some(c)) => {
                    assert_eq!(names(&c), blob_names());
                    complete.get_or_insert(cut);
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert!(complete.is_some_and(|c| c < SERVER_FLIGHT.len()));
    }

    #[test]
    fn certificate_cache_parses_each_leaf_once() {
        let mut cache = CertificateCache::default();
        let mut scratch = Vec::new();
        let first = read(&mut cache, SERVER_FLIGHT, &mut scratch)
            .unwrap()
            .unwrap();
        let again = read(&mut cache, SERVER_FLIGHT, &mut scratch)
            .unwrap()
            .unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second read is the cached value"
        );
        assert_eq!(names(&first), blob_names());
        assert_eq!(read(&mut cache, RESUMED_FLIGHT, &mut scratch), Ok(None));
        // A broken leaf is remembered as broken.
        let mut flight = record(22, 0x0303, &hs(2, &SERVER_HELLO));
        flight.extend(record(22, 0x0303, &certificate_msg(&[b"not DER at all"])));
        let bad = Err(TlsError::Malformed(Malformed::Certificate));
        assert_eq!(read(&mut cache, &flight, &mut scratch), bad);
        assert_eq!(read(&mut cache, &flight, &mut scratch), bad);
        // Bounded: many distinct leaves keep at most CAPACITY entries, and a
        // replaced entry is parsed again correctly.
        for i in 0..CertificateCache::CAPACITY as u32 + 10 {
            let junk = i.to_be_bytes();
            let mut f = record(22, 0x0303, &hs(2, &SERVER_HELLO));
            f.extend(record(22, 0x0303, &certificate_msg(&[&junk])));
            let _ = read(&mut cache, &f, &mut scratch);
        }
        assert_eq!(cache.map.len(), CertificateCache::CAPACITY);
        assert_eq!(cache.order.len(), CertificateCache::CAPACITY);
        let c = read(&mut cache, SERVER_FLIGHT, &mut scratch)
            .unwrap()
            .unwrap();
        assert_eq!(names(&c), blob_names());
    }

    #[test]
    fn certificate_resumed_session_has_none() {
        assert_eq!(parse(RESUMED_FLIGHT), Ok(None));
    }

    #[test]
    fn certificate_only_the_leaf_is_needed() {
        let intermediate = vec![0x30; 9000];
        let msg = certificate_msg(&[BLOB_CERT, &intermediate]);
        let mut bytes = record(22, 0x0303, &hs(2, &SERVER_HELLO));
        bytes.extend(record(22, 0x0303, &msg[..BLOB_CERT.len() + 10]));
        assert_eq!(
            parse(&bytes).map(|c| c.as_ref().map(names)),
            Ok(Some(blob_names()))
        );
    }

    #[test]
    fn certificate_split_over_records_at_every_point() {
        let msg = certificate_msg(&[BLOB_CERT]);
        let mut flight = hs(2, &SERVER_HELLO);
        flight.extend(&msg);
        for split in 1..flight.len() {
            let mut bytes = record(22, 0x0303, &flight[..split]);
            bytes.extend(record(22, 0x0303, &flight[split..]));
            assert_eq!(
                parse(&bytes).map(|c| c.as_ref().map(names)),
                Ok(Some(blob_names())),
                "split {split}"
            );
        }
    }

    #[test]
    fn certificate_absent_after_hello() {
        let hello = record(22, 0x0303, &hs(2, &SERVER_HELLO));
        assert_eq!(parse(&hello), Err(TlsError::NeedMore));
        // Anonymous suite: ServerKeyExchange follows the hello.
        let mut anon = hello.clone();
        anon.extend(record(22, 0x0303, &hs(12, &[0; 8])));
        assert_eq!(parse(&anon), Ok(None));
        // An empty certificate list.
        let mut empty = hello.clone();
        empty.extend(record(22, 0x0303, &certificate_msg(&[])));
        assert_eq!(parse(&empty), Ok(None));
        // An alert after the hello.
        let mut alert = hello;
        alert.extend(record(21, 0x0303, &[2, 40]));
        assert_eq!(parse(&alert), Ok(None));
    }

    #[test]
    fn certificate_malformed() {
        let hello = record(22, 0x0303, &hs(2, &SERVER_HELLO));
        let with = |msg: Vec<u8>| {
            let mut b = hello.clone();
            b.extend(record(22, 0x0303, &msg));
            parse(&b)
        };
        let bad = Err(TlsError::Malformed(Malformed::Certificate));
        // Not a certificate.
        assert_eq!(with(certificate_msg(&[b"not DER at all"])), bad);
        // List length disagrees with the message length.
        let mut m = certificate_msg(&[BLOB_CERT]);
        m[6] ^= 1;
        assert_eq!(with(m), bad);
        // Certificate longer than its list.
        let mut body = u24(10).to_vec();
        body.extend(u24(20));
        body.extend([0; 7]);
        assert_eq!(with(hs(11, &body)), bad);
        // Leaf larger than the bound fails at once.
        let mut head = vec![HS_CERTIFICATE];
        head.extend(u24(MAX + 13));
        head.extend(u24(MAX + 10));
        head.extend(u24(MAX + 7));
        assert_eq!(
            with(head),
            Err(TlsError::Malformed(Malformed::HandshakeTooLarge))
        );
        // A record that is not TLS in the middle of the flight.
        let mut b = hello.clone();
        b.extend([0x47, 0x45, 0x54, 0x20, 0x2f]);
        assert_eq!(parse(&b), Err(TlsError::Malformed(Malformed::RecordHeader)));
        // Something other than a hello first.
        assert_eq!(
            parse(&record(22, 0x0303, &certificate_msg(&[BLOB_CERT]))),
            Err(TlsError::Malformed(Malformed::UnexpectedMessage))
        );
    }

    #[test]
    fn certificate_garbage_never_panics() {
        let mut seed = 0x9e37_79b9u32;
        let mut flight = record(22, 0x0303, &hs(2, &SERVER_HELLO));
        flight.extend(record(22, 0x0303, &certificate_msg(&[BLOB_CERT])));
        for round in 0..2000 {
            let mut v = flight.clone();
            for _ in 0..1 + round % 8 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let i = seed as usize % v.len();
                v[i] = (seed >> 8) as u8;
            }
            let cut = (seed >> 3) as usize % (v.len() + 1);
            let _ = parse(&v[..cut]);
            let _ = parse(&v);
        }
    }
}
