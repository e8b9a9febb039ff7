//! Client fingerprints of a ClientHello: JA4 (FoxIO's TLS client
//! fingerprint, BSD-3; the other JA4+ methods are under a non-commercial
//! licence and not implemented) and the MD5 of JA3.
//!
//! Input: a ClientHello's version field, cipher suites and raw extension
//! block (as the hello parser has them). Output: a small fixed-size
//! [`Fingerprint`] (36 + 16 bytes, no allocation kept), computed once per
//! ClientHello. Rules, from FoxIO's JA4 technical details: `t`, the version
//! (highest non-GREASE supported_versions, else the hello's: `13` `12` `11`
//! `10` `s3` `s2`, `00` otherwise), `d`/`i` for SNI present or not, cipher
//! and extension counts without GREASE capped at 99, the first ALPN value's
//! first and last characters (their hex digits when not ASCII alphanumeric;
//! `00` without ALPN); then the first 12 hex digits of the SHA-256 of the
//! sorted cipher list, and of the sorted extension list without SNI and
//! ALPN followed by `_` and the signature algorithms in wire order
//! (`000000000000` for an empty list). JA3: `version,ciphers,extensions,
//! groups,point formats` in decimal, `-`-joined, GREASE removed (as
//! Wireshark computes it), hashed with MD5. Nothing here panics: a broken
//! extension ends the walk with what was read.

use md5::{Digest, Md5};

use super::version::is_grease;
use ring::digest::{SHA256, digest};

/// The fingerprints of one ClientHello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    ja4: [u8; 36],
    ja3_md5: [u8; 16],
}

impl Fingerprint {
    /// The JA4 fingerprint, e.g. `t13d1516h2_8daaf6152771_b186095e22b6`.
    pub fn ja4(&self) -> &str {
        std::str::from_utf8(&self.ja4).unwrap_or("")
    }

    /// The JA3 hash (MD5 of the JA3 string), 32 hex digits.
    pub fn ja3_hash(&self) -> String {
        let mut h = [0u8; 32];
        hex_into(&self.ja3_md5, &mut h);
        String::from_utf8_lossy(&h).into_owned()
    }
}

const EXT_SNI: u16 = 0;
const EXT_GROUPS: u16 = 10;
const EXT_POINT_FORMATS: u16 = 11;
const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Big-endian u16 values of `b` (an odd last byte is ignored).
fn u16s(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// The first 12 hex digits of the SHA-256 of `s`, or twelve zeros when `s`
/// is empty.
fn sha12(s: &[u8], out: &mut [u8]) {
    if s.is_empty() {
        out.fill(b'0');
        return;
    }
    let d = digest(&SHA256, s);
    hex_into(&d.as_ref()[..6], out);
}

/// `b` as lowercase hex into `out` (two digits a byte).
fn hex_into(b: &[u8], out: &mut [u8]) {
    for (x, o) in b.iter().zip(out.chunks_exact_mut(2)) {
        o[0] = DIGITS[usize::from(x >> 4)];
        o[1] = DIGITS[usize::from(x & 0x0f)];
    }
}

/// Appends `values` as 4-digit lowercase hex, comma-joined.
fn hex_list(values: &[u16], out: &mut Vec<u8>) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut h = [0u8; 4];
        hex_into(&v.to_be_bytes(), &mut h);
        out.extend_from_slice(&h);
    }
}

/// Appends `values` in decimal, `-`-joined.
fn dec_list(values: impl Iterator<Item = u16>, out: &mut Vec<u8>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(b'-');
        }
        dec(v, out);
    }
}

fn dec(v: u16, out: &mut Vec<u8>) {
    let mut digits = [0u8; 5];
    let mut n = v;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// JA4's version code.
fn version_code(v: u16) -> [u8; 2] {
    match v {
        0x0304 => *b"13",
        0x0303 => *b"12",
        0x0302 => *b"11",
        0x0301 => *b"10",
        0x0300 => *b"s3",
        0x0002 => *b"s2",
        0xfeff => *b"d1",
        0xfefd => *b"d2",
        0xfefc => *b"d3",
        _ => *b"00",
    }
}

/// JA4's two ALPN characters for the first ALPN value.
fn alpn_code(first: Option<&[u8]>) -> [u8; 2] {
    let Some(v) = first.filter(|v| !v.is_empty()) else {
        return *b"00";
    };
    let (a, z) = (v[0], v[v.len() - 1]);
    if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
        return [a, z];
    }
    // The hex rule: the first byte's high digit, the last byte's low digit.
    [DIGITS[usize::from(a >> 4)], DIGITS[usize::from(z & 0x0f)]]
}

fn count(n: usize) -> [u8; 2] {
    let n = n.min(99);
    [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]
}

/// The fingerprints of a ClientHello: its version field, cipher suites and
/// extension block (type, length, data repeated).
pub fn fingerprint(hello_version: u16, ciphers: &[u16], extensions: &[u8]) -> Fingerprint {
    let mut ext_types = Vec::with_capacity(24);
    let (mut sni, mut alpn, mut sigalgs, mut versions) = (false, None, &[][..], &[][..]);
    let (mut groups, mut formats) = (&[][..], &[][..]);
    let mut rest = extensions;
    while let [a, b, c, d, tail @ ..] = rest {
        let t = u16::from_be_bytes([*a, *b]);
        let len = usize::from(u16::from_be_bytes([*c, *d]));
        let Some(data) = tail.get(..len) else {
            break;
        };
        rest = &tail[len..];
        ext_types.push(t);
        match t {
            EXT_SNI => sni = true,
            EXT_ALPN => {
                // protocol_name_list<2..2^16-1> of opaque<1..2^8-1>
                if let [_, _, n, names @ ..] = data {
                    alpn = names.get(..usize::from(*n));
                }
            }
            EXT_SIGNATURE_ALGORITHMS => sigalgs = data.get(2..).unwrap_or(&[]),
            EXT_SUPPORTED_VERSIONS => versions = data.get(1..).unwrap_or(&[]),
            EXT_GROUPS => groups = data.get(2..).unwrap_or(&[]),
            EXT_POINT_FORMATS => formats = data.get(1..).unwrap_or(&[]),
            _ => {}
        }
    }
    let version = u16s(versions)
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(hello_version);
    let mut ciphers_ok: Vec<u16> = ciphers.iter().copied().filter(|c| !is_grease(*c)).collect();
    let exts_ok: Vec<u16> = ext_types
        .iter()
        .copied()
        .filter(|e| !is_grease(*e))
        .collect();

    let mut ja4 = [b'0'; 36];
    ja4[0] = b't';
    ja4[1..3].copy_from_slice(&version_code(version));
    ja4[3] = if sni { b'd' } else { b'i' };
    ja4[4..6].copy_from_slice(&count(ciphers_ok.len()));
    ja4[6..8].copy_from_slice(&count(exts_ok.len()));
    ja4[8..10].copy_from_slice(&alpn_code(alpn));
    ja4[10] = b'_';
    ja4[23] = b'_';
    // JA3 keeps wire order: build it before sorting.
    let mut text = Vec::with_capacity(256);
    dec(hello_version, &mut text);
    text.push(b',');
    dec_list(ciphers_ok.iter().copied(), &mut text);
    text.push(b',');
    dec_list(exts_ok.iter().copied(), &mut text);
    text.push(b',');
    dec_list(u16s(groups).filter(|g| !is_grease(*g)), &mut text);
    text.push(b',');
    dec_list(formats.iter().map(|f| u16::from(*f)), &mut text);
    let mut ja3_md5 = [0u8; 16];
    ja3_md5.copy_from_slice(&Md5::digest(&text));
    ciphers_ok.sort_unstable();
    text.clear();
    hex_list(&ciphers_ok, &mut text);
    sha12(&text, &mut ja4[11..23]);
    let mut sorted: Vec<u16> = exts_ok
        .into_iter()
        .filter(|e| *e != EXT_SNI && *e != EXT_ALPN)
        .collect();
    sorted.sort_unstable();
    text.clear();
    hex_list(&sorted, &mut text);
    let mut sig = u16s(sigalgs).filter(|s| !is_grease(*s)).peekable();
    if !text.is_empty() && sig.peek().is_some() {
        text.push(b'_');
        let sig: Vec<u16> = sig.collect();
        hex_list(&sig, &mut text);
    }
    sha12(&text, &mut ja4[24..36]);
    Fingerprint { ja4, ja3_md5 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::craft::ext;

    fn alpn(names: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for n in names {
            list.push(n.len() as u8);
            list.extend_from_slice(n);
        }
        let mut d = (list.len() as u16).to_be_bytes().to_vec();
        d.extend(list);
        ext(EXT_ALPN, &d)
    }

    #[test]
    fn ja4_alpn_rules() {
        // FoxIO's examples of the hex rule.
        let cases: [(&[u8], &str); 8] = [
            (&[0xab], "ab"),
            (&[0x20], "20"),
            (&[0xab, 0xcd], "ad"),
            (&[0x20, 0x61], "21"),
            (&[0x30, 0xab], "3b"),
            (&[0x61, 0x20], "60"),
            (&[0x30, 0x31, 0xab, 0xcd], "3d"),
            (&[0x30, 0xab, 0xcd, 0x31], "01"),
        ];
        for (v, want) in cases {
            assert_eq!(alpn_code(Some(v)), want.as_bytes(), "{v:?}");
        }
        assert_eq!(&alpn_code(Some(b"h2")), b"h2");
        assert_eq!(&alpn_code(Some(b"http/1.1")), b"h1");
        assert_eq!(&alpn_code(Some(b"x")), b"xx");
        assert_eq!(&alpn_code(None), b"00");
        assert_eq!(&alpn_code(Some(b"")), b"00");
    }

    /// FoxIO's worked example: the extension list and signature algorithms
    /// of their technical details hash to e5627efa2ab1 (6d807ffa2a79 without
    /// signature algorithms).
    #[test]
    fn ja4_extension_hash_example() {
        let exts = [
            0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
            0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
        ];
        let sig = [
            0x0403u16, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        let mut block = Vec::new();
        for e in exts {
            let data: Vec<u8> = match e {
                0x000d => {
                    let mut d = ((sig.len() * 2) as u16).to_be_bytes().to_vec();
                    sig.iter().for_each(|s| d.extend(s.to_be_bytes()));
                    d
                }
                0x002b => vec![2, 3, 4],
                _ => vec![],
            };
            block.extend(match e {
                0x0010 => alpn(&[b"h2", b"http/1.1"]),
                _ => ext(e, &data),
            });
        }
        let f = fingerprint(0x0303, &[0x1301, 0x1302], &block);
        assert_eq!(&f.ja4()[..10], "t13d0216h2");
        assert_eq!(&f.ja4()[24..], "e5627efa2ab1");
        // Without signature algorithms (an empty list) the extension list
        // alone is hashed: FoxIO's 6d807ffa2a79.
        let no_sig: Vec<u8> = exts
            .iter()
            .flat_map(|e| match *e {
                0x000d => ext(*e, &[0, 0]),
                _ => ext(*e, &[]),
            })
            .collect();
        let f = fingerprint(0x0303, &[], &no_sig);
        assert_eq!(&f.ja4()[24..], "6d807ffa2a79");
        assert_eq!(&f.ja4()[11..23], "000000000000");
    }

    #[test]
    fn ja4_grease_counts_and_versions() {
        // GREASE ciphers, extensions and versions are ignored everywhere.
        let mut block = ext(0x0a0a, &[]);
        block.extend(ext(EXT_SUPPORTED_VERSIONS, &[4, 0x2a, 0x2a, 3, 3]));
        let f = fingerprint(0x0301, &[0x1a1a, 0x002f], &block);
        assert_eq!(&f.ja4()[..10], "t12i010100");
        // No supported_versions: the hello's version; SSL 3.0 and unknown.
        assert_eq!(
            &fingerprint(0x0300, &[0x002f], &[]).ja4()[..10],
            "ts3i010000"
        );
        assert_eq!(
            &fingerprint(0x0305, &[0x002f], &[]).ja4()[..10],
            "t00i010000"
        );
        // Over 99 entries: 99.
        let many: Vec<u16> = (1..=150).collect();
        assert_eq!(&fingerprint(0x0303, &many, &[]).ja4()[4..6], "99");
        // Empty lists hash to zeros.
        let f = fingerprint(0x0303, &[], &[]);
        assert_eq!(f.ja4(), "t12i000000_000000000000_000000000000");
    }

    #[test]
    fn ja3_string_and_hash() {
        // JA3 of a hello with ciphers 47 and 53, extensions 0, 10 (groups
        // 29, 23) and 11 (format 0), GREASE dropped; the MD5 of
        // "771,47-53,0-10-11,29-23,0".
        let mut block = ext(0, &[0, 0]);
        block.extend(ext(EXT_GROUPS, &[0, 6, 0x2a, 0x2a, 0, 29, 0, 23]));
        block.extend(ext(EXT_POINT_FORMATS, &[1, 0]));
        block.extend(ext(0x1a1a, &[]));
        let f = fingerprint(0x0303, &[0x002f, 0x0a0a, 0x0035], &block);
        assert_eq!(f.ja3_hash(), "780f051449fc49c0047fdecbdb1b53c8");
        // A broken extension ends the walk with what was read: nothing.
        let f = fingerprint(0x0303, &[1], &[0, 1, 0xff, 0xff, 1]);
        assert_eq!(&f.ja4()[..10], "t12i010000");
    }
}
