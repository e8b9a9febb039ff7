//! The TLS record layer of one direction, read incrementally: stream bytes →
//! records → handshake messages.
//!
//! Input: the in-order stream start of one direction, which only ever grows
//! (the flow table's reassembly never replaces a byte it delivered), handed in
//! again each time it grew. Output: the next [`Item`] — a whole handshake
//! message, a record of another content type between messages, the start of a
//! message not yet whole, or nothing new — or a [`TlsError`] for bytes that are
//! not TLS records. Every consumer of a direction's handshake (the opening in
//! `extract.rs`, the server's certificate in `certificate.rs`, and any later
//! reader after a preamble) reads through one [`HandshakeReader`], which keeps
//! its position between calls: bytes it has returned are never parsed again.
//!
//! Invariants: the reader's state is two stream offsets; it holds no bytes.
//! A message inside one record is returned as a slice of the stream (no
//! copy); only a message that spans records is gathered into the caller's
//! scratch buffer, from its first record each time the stream grows until it
//! is whole, so what is buffered is at most the incomplete message.
//! Handshake messages interleaved with other records (RFC 8446 5.1 forbids
//! it) are malformed. Every length is checked before use; nothing here panics
//! on any input.

use super::error::{Malformed, TlsError};

pub const CT_CHANGE_CIPHER_SPEC: u8 = 20;
pub const CT_ALERT: u8 = 21;
pub const CT_HANDSHAKE: u8 = 22;
pub const CT_APPLICATION_DATA: u8 = 23;
pub const CT_HEARTBEAT: u8 = 24;

pub const HS_CLIENT_HELLO: u8 = 1;
pub const HS_SERVER_HELLO: u8 = 2;
/// HelloRetryRequest as a message of its own (TLS 1.3 drafts before 22).
pub const HS_HELLO_RETRY_REQUEST_DRAFT: u8 = 6;
pub const HS_CERTIFICATE: u8 = 11;

/// Largest TLSCiphertext fragment (RFC 8446 5.2: 2^14 + 256; RFC 5246: + 2048).
pub const MAX_RECORD_LEN: usize = 16384 + 2048;

const RECORD_HEADER: usize = 5;
const MESSAGE_HEADER: usize = 4;

/// What the stream holds next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A whole handshake message (type and body).
    Message { kind: u8, body: &'a [u8] },
    /// A whole record of another content type, between handshake messages.
    Record { ctype: u8, body: &'a [u8] },
    /// The next handshake message has begun but is not whole: its type, its
    /// declared length, and the part of its body in whole records so far.
    /// The reader stays before it.
    Partial {
        kind: u8,
        len: usize,
        head: &'a [u8],
    },
    /// Nothing whole yet (a record or a message header is incomplete).
    NeedMore,
}

/// Where one direction's record walk stands (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandshakeReader {
    /// Stream offset of the first record (after a preamble, where TLS starts).
    start: u32,
    /// Stream offset of the record the next item starts in.
    record: u32,
    /// Bytes of that record's body already returned (always less than its
    /// length: a record read to its end moves `record` on).
    skip: u32,
}

impl HandshakeReader {
    /// A reader whose first record starts at stream offset `start` (what a
    /// preamble left before TLS).
    pub fn starting_at(start: usize) -> Self {
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        HandshakeReader {
            start,
            record: start,
            skip: 0,
        }
    }

    /// Stream offset of the first record.
    pub fn start(&self) -> usize {
        self.start as usize
    }

    /// No record has been read whole yet: the first bytes decide whether the
    /// stream is TLS at all.
    pub fn at_start(&self) -> bool {
        self.record == self.start && self.skip == 0
    }

    /// The next item of `stream` (the direction's whole stream start, as it
    /// now is). `scratch` is used only for a message spanning records, and
    /// the item may borrow it. `judged(kind, len, head)` says whether the
    /// caller can already judge a message from its start (e.g. it is too long
    /// to wait for): a message being gathered is then returned as
    /// [`Item::Partial`] at once, before later records are read, so what
    /// decides is always the first thing in the stream that can, however the
    /// stream grew.
    pub fn next<'a>(
        &mut self,
        stream: &'a [u8],
        scratch: &'a mut Vec<u8>,
        judged: impl Fn(u8, usize, &[u8]) -> bool,
    ) -> Result<Item<'a>, TlsError> {
        let at = self.record as usize;
        let first = self.record == self.start;
        let Some((ctype, body)) = record_at(stream, at, first)? else {
            return Ok(Item::NeedMore);
        };
        let end = at + RECORD_HEADER + body.len();
        if ctype != CT_HANDSHAKE {
            self.moved_to(end, 0);
            return Ok(Item::Record { ctype, body });
        }
        let avail = body.get(self.skip as usize..).unwrap_or(&[]);
        if let Some((kind, len)) = message_header(avail)
            && let Some(msg) = avail.get(MESSAGE_HEADER..MESSAGE_HEADER + len)
        {
            let used = self.skip as usize + MESSAGE_HEADER + len;
            if used == body.len() {
                self.moved_to(end, 0);
            } else {
                self.skip = used as u32;
            }
            return Ok(Item::Message { kind, body: msg });
        }
        // The message goes on in the next records: gather it from its start.
        scratch.clear();
        scratch.extend_from_slice(avail);
        let mut next = end;
        loop {
            if let Some((kind, len)) = message_header(scratch)
                && judged(kind, len, scratch.get(MESSAGE_HEADER..).unwrap_or(&[]))
            {
                return Ok(partial(scratch));
            }
            let Some((ctype, body)) = record_at(stream, next, false)? else {
                return Ok(partial(scratch));
            };
            if ctype != CT_HANDSHAKE {
                let kind = if ctype == CT_ALERT {
                    Malformed::Alert
                } else {
                    Malformed::UnexpectedMessage
                };
                return Err(TlsError::Malformed(kind));
            }
            let before = scratch.len();
            scratch.extend_from_slice(body);
            if let Some((kind, len)) = message_header(scratch)
                && scratch.len() >= MESSAGE_HEADER + len
            {
                let used = MESSAGE_HEADER + len - before;
                let record_end = next + RECORD_HEADER + body.len();
                if used == body.len() {
                    self.moved_to(record_end, 0);
                } else {
                    self.moved_to(next, used);
                }
                scratch.truncate(MESSAGE_HEADER + len);
                let msg = scratch.get(MESSAGE_HEADER..).unwrap_or(&[]);
                return Ok(Item::Message { kind, body: msg });
            }
            next += RECORD_HEADER + body.len();
        }
    }

    fn moved_to(&mut self, record: usize, skip: usize) {
        // Stream starts are at most 2^24 bytes (--max-stream-bytes).
        self.record = u32::try_from(record).unwrap_or(u32::MAX);
        self.skip = u32::try_from(skip).unwrap_or(u32::MAX);
    }
}

/// The whole record at `at`: its content type and body; `None` while it is
/// incomplete. `first`: the stream's first record, where bytes that cannot
/// begin a record mean "not TLS" and a record that cannot begin a handshake
/// means the capture began mid-flow.
fn record_at(stream: &[u8], at: usize, first: bool) -> Result<Option<(u8, &[u8])>, TlsError> {
    let rest = stream.get(at..).unwrap_or(&[]);
    let bad = if first {
        TlsError::NotTls
    } else {
        TlsError::Malformed(Malformed::RecordHeader)
    };
    let Some(header) = rest.get(..RECORD_HEADER) else {
        // A partial header: judge what we have, so garbage fails fast.
        return if check_header_prefix(rest) {
            Ok(None)
        } else {
            Err(bad)
        };
    };
    if !check_header_prefix(header) {
        return Err(bad);
    }
    let ctype = header[0];
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if len > MAX_RECORD_LEN {
        return Err(if first {
            TlsError::NotTls
        } else {
            TlsError::Malformed(Malformed::RecordTooLong)
        });
    }
    if first
        && matches!(
            ctype,
            CT_CHANGE_CIPHER_SPEC | CT_APPLICATION_DATA | CT_HEARTBEAT
        )
    {
        return Err(TlsError::MidStream);
    }
    let Some(body) = rest.get(RECORD_HEADER..RECORD_HEADER + len) else {
        return Ok(None);
    };
    if ctype == CT_HANDSHAKE && len == 0 {
        return Err(TlsError::Malformed(Malformed::RecordHeader));
    }
    Ok(Some((ctype, body)))
}

/// A handshake message header: type and body length (24 bits).
fn message_header(b: &[u8]) -> Option<(u8, usize)> {
    match *b {
        [kind, x, y, z, ..] => Some((
            kind,
            (usize::from(x) << 16) | (usize::from(y) << 8) | usize::from(z),
        )),
        _ => None,
    }
}

fn partial(gathered: &[u8]) -> Item<'_> {
    match message_header(gathered) {
        Some((kind, len)) => Item::Partial {
            kind,
            len,
            head: gathered.get(MESSAGE_HEADER..).unwrap_or(&[]),
        },
        None => Item::NeedMore,
    }
}

/// True when the bytes present so far can begin a TLS record header.
pub fn check_header_prefix(h: &[u8]) -> bool {
    let type_ok = |t: u8| (CT_CHANGE_CIPHER_SPEC..=CT_HEARTBEAT).contains(&t);
    match *h {
        [] => true,
        [t] => type_ok(t),
        [t, major] => type_ok(t) && major == 3,
        [t, major, minor, ..] => type_ok(t) && major == 3 && minor <= 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::craft::{handshake as hs, record};

    /// Reads every item of `stream`, feeding it in prefixes ending at
    /// `cuts` (and then whole), as a growing stream start does.
    fn items(stream: &[u8], cuts: &[usize]) -> Result<Vec<(u8, Vec<u8>)>, TlsError> {
        let mut r = HandshakeReader::default();
        let mut scratch = Vec::new();
        let mut got = Vec::new();
        for &cut in cuts.iter().chain([stream.len()].iter()) {
            loop {
                match r.next(&stream[..cut], &mut scratch, |_, _, _| false)? {
                    Item::Message { kind, body } => got.push((kind, body.to_vec())),
                    Item::Record { ctype, body } => got.push((ctype + 100, body.to_vec())),
                    Item::Partial { .. } | Item::NeedMore => break,
                }
            }
        }
        Ok(got)
    }

    #[test]
    fn record_messages_in_one_record_and_spanning_records() {
        let a = hs(2, &[1; 70]);
        let b = hs(11, &[2; 300]);
        let c = hs(14, &[]);
        let mut flight = record(22, 0x0303, &[a.clone(), b[..10].to_vec()].concat());
        flight.extend(record(22, 0x0303, &b[10..200]));
        flight.extend(record(22, 0x0303, &[b[200..].to_vec(), c.clone()].concat()));
        flight.extend(record(20, 0x0303, &[1]));
        let want = vec![
            (2, vec![1; 70]),
            (11, vec![2; 300]),
            (14, vec![]),
            (120, vec![1]),
        ];
        assert_eq!(items(&flight, &[]), Ok(want.clone()));
        // Any growth of the stream start gives the same items, each once.
        for cut in 0..flight.len() {
            assert_eq!(items(&flight, &[cut]), Ok(want.clone()), "cut {cut}");
        }
        let every: Vec<usize> = (0..flight.len()).collect();
        assert_eq!(items(&flight, &every), Ok(want));
    }

    #[test]
    fn record_partial_message_shows_its_head() {
        let b = hs(11, &[5; 100]);
        let mut s = record(22, 0x0303, &b[..40]);
        s.extend(record(22, 0x0303, &b[40..60]));
        s.extend(&record(22, 0x0303, &b[60..])[..10]);
        let mut r = HandshakeReader::default();
        let mut scratch = Vec::new();
        assert_eq!(
            r.next(&s, &mut scratch, |_, _, _| false),
            Ok(Item::Partial {
                kind: 11,
                len: 100,
                head: &[5; 56][..]
            })
        );
        // The reader stayed before the message.
        assert!(r.at_start());
    }

    /// What a fresh reader makes of `s`: the kind of item, or the error.
    fn first(s: &[u8]) -> Result<&'static str, TlsError> {
        let mut scratch = Vec::new();
        HandshakeReader::default()
            .next(s, &mut scratch, |_, _, _| false)
            .map(|item| match item {
                Item::Message { .. } => "message",
                Item::Record { .. } => "record",
                Item::Partial { .. } => "partial",
                Item::NeedMore => "need more",
            })
    }

    #[test]
    fn record_errors() {
        assert_eq!(first(b"GET / HTTP/1.1"), Err(TlsError::NotTls));
        assert_eq!(first(&[22, 3]), Ok("need more"));
        assert_eq!(first(&[22, 3, 9]), Err(TlsError::NotTls));
        assert_eq!(
            first(&record(23, 0x0303, &[1, 2])[..6]),
            Err(TlsError::MidStream)
        );
        assert_eq!(
            first(&record(22, 0x0303, &[])),
            Err(TlsError::Malformed(Malformed::RecordHeader))
        );
        // An alert inside a message that spans records.
        let mut s = record(22, 0x0303, &hs(1, &[0; 10])[..6]);
        s.extend(record(21, 0x0303, &[2, 40]));
        assert_eq!(first(&s), Err(TlsError::Malformed(Malformed::Alert)));
        let mut scratch = Vec::new();
        // Garbage after a first good record is malformed, not "not TLS".
        let mut s = record(22, 0x0303, &hs(2, &[0; 4]));
        s.extend(b"garbage");
        let mut r = HandshakeReader::default();
        assert!(matches!(
            r.next(&s, &mut scratch, |_, _, _| false),
            Ok(Item::Message { .. })
        ));
        assert_eq!(
            r.next(&s, &mut scratch, |_, _, _| false),
            Err(TlsError::Malformed(Malformed::RecordHeader))
        );
    }
}
