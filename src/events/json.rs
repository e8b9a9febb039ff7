//! A JSON object on one line, written field by field into a byte buffer.
//!
//! Input: field names (static, plain ASCII: written as they are) and
//! values. Output: the bytes `serde_json` writes for the same object (the
//! same escapes: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control
//! characters as `\u00xx`; everything else, non-ASCII included, as is), at
//! a fraction of the generic path's cost: a string that needs no escape
//! (nearly all) is copied whole, and no value is formatted through
//! `core::fmt` on the common path. Invariant: a `Line` always writes a
//! well-formed object, whatever the values.

use std::net::IpAddr;

pub use crate::text::{decimal, ip_text, rfc3339_micros, rfc3339_seconds};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The key of a field as written: `"name":` (a literal, so its length is
/// known where it is used).
#[macro_export]
macro_rules! json_key {
    ($name:literal) => {
        concat!("\"", $name, "\":")
    };
}

/// One object being written; [`Line::end`] closes it. Keys come from
/// [`json_key!`].
pub struct Line<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Line<'a> {
    /// Opens an object at the end of `out`.
    #[inline]
    pub fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Line { out, first: true }
    }

    /// Closes the object.
    #[inline]
    pub fn end(self) {
        self.out.push(b'}');
    }

    #[inline]
    fn key(&mut self, key: &'static str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(key.as_bytes());
    }

    #[inline]
    pub fn str(&mut self, key: &'static str, value: &str) {
        self.key(key);
        string(self.out, value);
    }

    /// A string of the program's own (a name from a closed set, a date,
    /// hex digits): plain ASCII that needs no escape, so none is looked
    /// for.
    #[inline]
    pub fn plain(&mut self, key: &'static str, value: &str) {
        self.key(key);
        plain_string(self.out, value);
    }

    #[inline]
    pub fn opt_plain(&mut self, key: &'static str, value: Option<&str>) {
        match value {
            Some(v) => self.plain(key, v),
            None => self.null(key),
        }
    }

    /// A string of the program's own written by `write` (see
    /// [`Line::plain`]).
    #[inline]
    pub fn plain_with(&mut self, key: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        self.key(key);
        plain_string_with(self.out, write);
    }

    #[inline]
    pub fn opt_str(&mut self, key: &'static str, value: Option<&str>) {
        match value {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    #[inline]
    pub fn null(&mut self, key: &'static str) {
        self.key(key);
        self.out.extend_from_slice(b"null");
    }

    #[inline]
    pub fn bool(&mut self, key: &'static str, value: bool) {
        self.key(key);
        let text: &[u8] = if value { b"true" } else { b"false" };
        self.out.extend_from_slice(text);
    }

    #[inline]
    pub fn opt_bool(&mut self, key: &'static str, value: Option<bool>) {
        match value {
            Some(v) => self.bool(key, v),
            None => self.null(key),
        }
    }

    #[inline]
    pub fn u64(&mut self, key: &'static str, value: u64) {
        self.key(key);
        decimal(self.out, value);
    }

    /// An address as its text (IPv4 dotted, IPv6 as `Display` writes it).
    #[inline]
    pub fn ip(&mut self, key: &'static str, value: IpAddr) {
        self.key(key);
        self.out.push(b'"');
        ip_text(self.out, value);
        self.out.push(b'"');
    }

    /// A string value written by `write` (escaped like any string; bytes
    /// that are not UTF-8 are replaced).
    #[inline]
    pub fn str_with(&mut self, key: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        self.key(key);
        string_with(self.out, write);
    }

    /// A number (or other bare JSON value) written by `write` as it is.
    #[inline]
    pub fn raw_with(&mut self, key: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        self.key(key);
        write(self.out);
    }

    /// A nested object, its fields written by `fields`; left out whole
    /// when `fields` writes none.
    pub fn object(&mut self, key: &'static str, fields: impl FnOnce(&mut Line<'_>)) {
        let (start, first) = (self.out.len(), self.first);
        self.key(key);
        let mut inner = Line::begin(self.out);
        fields(&mut inner);
        if inner.first {
            self.out.truncate(start);
            self.first = first;
        } else {
            inner.end();
        }
    }

    /// An array, its items written by `items`.
    #[inline]
    pub fn array(&mut self, key: &'static str, items: impl FnOnce(&mut Array<'_>)) {
        self.key(key);
        self.out.push(b'[');
        let mut a = Array {
            out: self.out,
            first: true,
        };
        items(&mut a);
        self.out.push(b']');
    }
}

/// The items of an array being written ([`Line::array`]).
pub struct Array<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Array<'_> {
    fn comma(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    pub fn str(&mut self, value: &str) {
        self.comma();
        string(self.out, value);
    }

    /// A string of the program's own (see [`Line::plain`]).
    pub fn plain(&mut self, value: &str) {
        self.comma();
        plain_string(self.out, value);
    }

    /// A string of the program's own written by `write` (see
    /// [`Line::plain`]).
    pub fn plain_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.comma();
        plain_string_with(self.out, write);
    }

    pub fn u64(&mut self, value: u64) {
        self.comma();
        decimal(self.out, value);
    }

    /// An object, its fields written by `fields`.
    pub fn object(&mut self, fields: impl FnOnce(&mut Line<'_>)) {
        self.comma();
        let mut inner = Line::begin(self.out);
        fields(&mut inner);
        inner.end();
    }

    /// An address as its text (see [`Line::ip`]).
    pub fn ip(&mut self, value: IpAddr) {
        self.comma();
        self.out.push(b'"');
        ip_text(self.out, value);
        self.out.push(b'"');
    }
}

/// A string of the program's own, quoted (it needs no escape: checked in
/// debug builds).
#[inline]
fn plain_string(out: &mut Vec<u8>, value: &str) {
    debug_assert!(value.is_ascii() && plain(value.as_bytes()), "{value:?}");
    out.push(b'"');
    out.extend_from_slice(value.as_bytes());
    out.push(b'"');
}

/// [`plain_string`] of what `write` writes.
#[inline]
fn plain_string_with(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    out.push(b'"');
    let start = out.len();
    write(out);
    debug_assert!(out[start..].is_ascii() && plain(&out[start..]));
    out.push(b'"');
}

/// A string value written by `write`, quoted, escaped when it must be.
#[inline]
fn string_with(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    out.push(b'"');
    let start = out.len();
    write(out);
    let written = &out[start..];
    if written.is_ascii() && plain(written) {
        out.push(b'"');
    } else {
        let raw = out.split_off(start);
        out.pop();
        string(out, &String::from_utf8_lossy(&raw));
    }
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether no byte of `b` needs an escape: eight bytes a step (the
/// classic "has a zero byte" and "has a byte below n" word tests: exact
/// about whether any byte matches), the tail one by one.
fn plain(b: &[u8]) -> bool {
    if b.len() < 8 {
        return !b.iter().any(|&b| needs_escape(b));
    }
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        if !plain_word(c) {
            return false;
        }
    }
    // The tail as the last eight bytes (overlapping the last chunk).
    chunks.remainder().is_empty() || plain_word(&b[b.len() - 8..])
}

/// Whether no byte of an 8-byte word needs an escape.
fn plain_word(c: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut w = [0u8; 8];
    w.copy_from_slice(c);
    let x = u64::from_le_bytes(w);
    // A byte below 0x20 (bytes of 0x80 and above never count), and a
    // zero byte in `x` XOR the quote or the backslash.
    let below = x.wrapping_sub(ONES * 0x20) & !x;
    let q = x ^ (ONES * u64::from(b'"'));
    let s = x ^ (ONES * u64::from(b'\\'));
    let quote = q.wrapping_sub(ONES) & !q;
    let slash = s.wrapping_sub(ONES) & !s;
    (below | quote | slash) & HIGH == 0
}

/// `s` as a JSON string, quoted and escaped as `serde_json` does.
#[inline]
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    if plain(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
    } else {
        escaped(out, s.as_bytes());
    }
    out.push(b'"');
}

fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(s: &str) -> String {
        let mut out = Vec::new();
        string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_string_escapes_as_serde_json() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é€😀\u{7f}\u{2028}");
        for s in ["", "plain.blob.core.windows.net", "a\"b\\c", &all] {
            assert_eq!(one(s), serde_json::to_string(s).unwrap());
        }
    }

    proptest! {
        #[test]
        fn json_any_string_as_serde_json(s in ".*") {
            prop_assert_eq!(one(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn json_escapes_anywhere_in_a_word(s in "[a\"\\\\\\x00-\\x1f\\x7fé😀]{0,40}") {
            prop_assert_eq!(one(&s), serde_json::to_string(&s).unwrap());
        }

    }
}
