//! A ClientHello body read in one pass, borrowed from the stream.
//!
//! Input: the body of a ClientHello handshake message (after its 4-byte
//! header). Output: [`ClientHello`], slices of the body (the cipher list
//! and the extension block as they are on the wire; nothing copied or
//! collected), and the two extensions the census reads ([`server_name`],
//! [`supported_versions`]). The rules are tls-parser's (0.12), which stays
//! the oracle: the `client_hello` fuzz target checks that both read every
//! input the same way (a session ID over 32 bytes, a cipher list of odd
//! length or beyond the body, or a truncated compression list is refused;
//! an extension block that is missing or longer than what follows reads as
//! none; bytes after it are ignored). Nothing here panics or allocates.

/// The fields of a ClientHello the census reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// `legacy_version`.
    pub version: u16,
    /// `legacy_session_id` (at most 32 bytes).
    pub session_id: &'a [u8],
    /// The cipher suites, two bytes each (even length).
    pub ciphers: &'a [u8],
    /// The extension block (type, length, data repeated), if present.
    pub extensions: Option<&'a [u8]>,
}

impl<'a> ClientHello<'a> {
    /// The cipher suite values in wire order.
    pub fn cipher_suites(&self) -> impl Iterator<Item = u16> + Clone + 'a {
        self.ciphers
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
    }

    /// Each extension's type and data, in wire order, up to the first
    /// one whose length runs past the block.
    pub fn extensions(&self) -> Extensions<'a> {
        Extensions {
            rest: self.extensions.unwrap_or(&[]),
        }
    }
}

/// Splits `n` bytes off the front of `b`.
fn take(b: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (b.len() >= n).then(|| b.split_at(n))
}

/// Reads a ClientHello body; `None` if it is malformed.
pub fn parse_client_hello(body: &[u8]) -> Option<ClientHello<'_>> {
    let (version, rest) = take(body, 2)?;
    let (_random, rest) = take(rest, 32)?;
    let (&sid_len, rest) = rest.split_first()?;
    if sid_len > 32 {
        return None;
    }
    let (session_id, rest) = take(rest, usize::from(sid_len))?;
    let (len, rest) = take(rest, 2)?;
    let ciphers_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    if ciphers_len % 2 == 1 {
        return None;
    }
    let (ciphers, rest) = take(rest, ciphers_len)?;
    let (&comp_len, rest) = rest.split_first()?;
    let (_compressions, rest) = take(rest, usize::from(comp_len))?;
    let extensions = take(rest, 2).and_then(|(len, rest)| {
        let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
        take(rest, n).map(|(block, _)| block)
    });
    Some(ClientHello {
        version: u16::from_be_bytes([version[0], version[1]]),
        session_id,
        ciphers,
        extensions,
    })
}

/// The extensions of a block ([`ClientHello::extensions`]).
#[derive(Clone, Debug)]
pub struct Extensions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Extensions<'a> {
    /// Type and data.
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (head, rest) = take(self.rest, 4)?;
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let Some((data, rest)) = take(rest, len) else {
            self.rest = &[];
            return None;
        };
        self.rest = rest;
        Some((u16::from_be_bytes([head[0], head[1]]), data))
    }
}

/// The first `host_name` entry of a server_name extension's data:
/// entries are read until one is cut short; `None` without a host name or
/// when the list's length runs past the data.
pub fn server_name(data: &[u8]) -> Option<&[u8]> {
    let (len, rest) = take(data, 2)?;
    let (mut list, _) = take(rest, usize::from(u16::from_be_bytes([len[0], len[1]])))?;
    while let Some((head, rest)) = take(list, 3) {
        let n = usize::from(u16::from_be_bytes([head[1], head[2]]));
        let (name, rest) = take(rest, n)?;
        if head[0] == 0 {
            return Some(name);
        }
        list = rest;
    }
    None
}

/// The versions a supported_versions extension's data lists, two bytes
/// each: all the bytes after the length byte (as tls-parser reads it, the
/// length byte itself unchecked), or the one version of a two-byte
/// extension; `None` for an empty extension or an odd-length list.
pub fn supported_versions(data: &[u8]) -> Option<&[u8]> {
    if data.len() == 2 {
        return Some(data);
    }
    let list = data.get(1..)?;
    (list.len() % 2 == 0).then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::craft::extension as ext;

    fn body(sid: &[u8], ciphers: &[u8], comp: &[u8], exts: Option<&[u8]>) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(sid.len() as u8);
        b.extend_from_slice(sid);
        b.extend_from_slice(&(ciphers.len() as u16).to_be_bytes());
        b.extend_from_slice(ciphers);
        b.push(comp.len() as u8);
        b.extend_from_slice(comp);
        if let Some(e) = exts {
            b.extend_from_slice(&(e.len() as u16).to_be_bytes());
            b.extend_from_slice(e);
        }
        b
    }

    /// What tls-parser says of the same bytes: version, ciphers, block, and
    /// for each extension the SNI and versions it reads.
    fn oracle(b: &[u8]) {
        let ours = parse_client_hello(b);
        let theirs = tls_parser::parse_tls_handshake_client_hello(b)
            .ok()
            .map(|(_, h)| h);
        assert_eq!(ours.is_some(), theirs.is_some(), "{b:?}");
        let (Some(ours), Some(theirs)) = (ours, theirs) else {
            return;
        };
        assert_eq!(ours.version, theirs.version.0);
        let ciphers: Vec<u16> = theirs.ciphers.iter().map(|c| c.0).collect();
        assert_eq!(ours.cipher_suites().collect::<Vec<_>>(), ciphers);
        assert_eq!(ours.extensions, theirs.ext);
    }

    #[test]
    fn hello_fields_as_tls_parser_reads_them() {
        let sni = ext(0, &[0, 8, 0, 0, 5, b'a', b'.', b'b', b'.', b'c']);
        let cases = [
            body(&[], &[0x13, 0x01], &[0], Some(&sni)),
            body(&[1; 32], &[0x13, 0x01, 0, 0x2f], &[0], None),
            body(&[1; 33], &[0x13, 0x01], &[0], None),
            body(&[], &[0x13], &[0], None),
            body(&[], &[], &[], Some(&[])),
        ];
        for b in &cases {
            oracle(b);
            for cut in 0..b.len() {
                oracle(&b[..cut]);
            }
        }
        let mut long = body(&[], &[0x13, 0x01], &[0], Some(&sni));
        let n = long.len();
        long[n - sni.len() - 2] = 0xff; // the block claims more than follows
        oracle(&long);
        assert_eq!(parse_client_hello(&long).unwrap().extensions, None);
    }

    #[test]
    fn hello_server_name_and_versions() {
        assert_eq!(server_name(&[0, 5, 0, 0, 2, b'h', b'i']), Some(&b"hi"[..]));
        // A non-host_name entry first, then the name.
        let d = [0, 10, 9, 0, 2, b'x', b'y', 0, 0, 2, b'h', b'i'];
        assert_eq!(server_name(&d), Some(&b"hi"[..]));
        // The list claims more than the data holds.
        assert_eq!(server_name(&[0, 9, 0, 0, 2, b'h', b'i']), None);
        // An entry cut short ends the list.
        assert_eq!(server_name(&[0, 5, 0, 0, 9, b'h', b'i']), None);
        assert_eq!(server_name(&[]), None);
        assert_eq!(
            supported_versions(&[4, 3, 4, 3, 3]),
            Some(&[3, 4, 3, 3][..])
        );
        assert_eq!(supported_versions(&[3, 4]), Some(&[3, 4][..]));
        assert_eq!(supported_versions(&[2, 3, 4, 3]), None);
        assert_eq!(supported_versions(&[]), None);
        assert_eq!(supported_versions(&[0]), Some(&[][..]));
    }
}
