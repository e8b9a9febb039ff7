//! An event as a line of Zeek's ssl.log (`--events-format zeek`, tab-separated
//! with Zeek's header lines, and `zeek-json`, as Zeek's JSON writer writes
//! it): Zeek's field names, types and meanings, so zeek-cut, RITA, Security
//! Onion or Malcolm read it as Zeek's own.
//!
//! Input: a [`FlowEvent`]. Output: the line; the header and `#close` lines
//! of the tab-separated layout. Fields: the base ssl.log's (`ts` to
//! `ssl_history`), ssl-log-ext's `server_version`, `client_version`,
//! `client_ciphers`, `client_supported_versions` and
//! `server_supported_version`, and `ja4` (as FoxIO's Zeek package names
//! it). Invariants: a field holds what Zeek would log for it, or is unset
//! (`-`; left out in JSON) where the census does not know it: `curve` only
//! from a TLS 1.3 key share, `established` only when the handshake did not
//! go through, `ssl_history` never. Strings are escaped as Zeek's ASCII
//! writer does (`\xNN` for separators and unprintable bytes; a value of
//! exactly `-` or `(empty)` has its first byte escaped).

use super::FlowEvent;
use super::fields::{policy_verdict_items, uid};
use super::json::{self, Line};
use crate::json_key;
use crate::policy::PolicySet;
use crate::tls::Outcome;
use crate::tls::names::{cipher_name, group_name};
use crate::tls::summary::known_alert;

const FIELDS: &str = "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tversion\tcipher\tcurve\tserver_name\tresumed\tlast_alert\tnext_protocol\testablished\tssl_history\tserver_version\tclient_version\tclient_ciphers\tclient_supported_versions\tserver_supported_version\tja4";
const TYPES: &str = "time\tstring\taddr\tport\taddr\tport\tstring\tstring\tstring\tstring\tbool\tstring\tstring\tbool\tstring\tcount\tcount\tvector[count]\tvector[count]\tcount\tstring";

/// Zeek's header lines for a log opened at `now_ns` (`judged`: with the
/// `policy_verdicts` column of `--policy`).
pub fn header(judged: bool, now_ns: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tssl\n#open\t",
    );
    zeek_date(out, now_ns);
    out.extend_from_slice(b"\n#fields\t");
    out.extend_from_slice(FIELDS.as_bytes());
    if judged {
        out.extend_from_slice(b"\tpolicy_verdicts");
    }
    out.extend_from_slice(b"\n#types\t");
    out.extend_from_slice(TYPES.as_bytes());
    if judged {
        out.extend_from_slice(b"\tvector[string]");
    }
    out.push(b'\n');
}

/// Zeek's last line, for a log closed at `now_ns`.
pub fn footer(now_ns: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"#close\t");
    zeek_date(out, now_ns);
    out.push(b'\n');
}

/// `YYYY-MM-DD-HH-MM-SS`, as Zeek's `#open` and `#close` lines write it.
fn zeek_date(out: &mut Vec<u8>, ns: u64) {
    let start = out.len();
    json::rfc3339_seconds(out, ns);
    out.pop(); // the Z
    for b in &mut out[start..] {
        if matches!(*b, b'T' | b':') {
            *b = b'-';
        }
    }
}

/// Zeek's name of a wire version (`TLSv12`, `TLSv13-draft23`,
/// `unknown-N`).
fn version_text(out: &mut Vec<u8>, v: u16) {
    let name: &str = match v {
        0x0002 => "SSLv2",
        0x0300 => "SSLv3",
        0x0301 => "TLSv10",
        0x0302 => "TLSv11",
        0x0303 => "TLSv12",
        0x0304 => "TLSv13",
        0xfeff => "DTLSv10",
        0xfefd => "DTLSv12",
        0xfefc => "DTLSv13",
        0x7f00..=0x7fff => {
            out.extend_from_slice(b"TLSv13-draft");
            json::decimal(out, u64::from(v & 0xff));
            return;
        }
        _ => return unknown(out, u64::from(v)),
    };
    out.extend_from_slice(name.as_bytes());
}

fn unknown(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(b"unknown-");
    json::decimal(out, v);
}

/// An alert as Zeek names it (`handshake_failure`, `unknown-N`).
fn alert_text(out: &mut Vec<u8>, a: u8) {
    match known_alert(a) {
        Some(n) => out.extend_from_slice(n.as_bytes()),
        None => unknown(out, u64::from(a)),
    }
}

fn named(out: &mut Vec<u8>, name: Option<&str>, v: u16) {
    match name {
        Some(n) => out.extend_from_slice(n.as_bytes()),
        None => unknown(out, u64::from(v)),
    }
}

/// The facts of one ssl.log line, each `None` where unset.
struct Row<'a> {
    version: Option<u16>,
    cipher: Option<u16>,
    curve: Option<u16>,
    server_name: Option<&'a str>,
    resumed: Option<bool>,
    last_alert: Option<u8>,
    next_protocol: Option<&'a str>,
    established: Option<bool>,
    server_version: Option<u16>,
    client_version: Option<u16>,
    client_ciphers: Option<&'a [u16]>,
    client_supported_versions: Option<&'a [crate::tls::Version]>,
    server_supported_version: Option<u16>,
    ja4: Option<&'a [u8]>,
}

impl<'a> Row<'a> {
    fn of(ev: &'a FlowEvent) -> Row<'a> {
        let f = &ev.flow;
        let client = f.client.as_ref();
        let server = f.server.as_deref();
        let negotiated = f.negotiated();
        Row {
            // The server's choice as sent (a draft keeps its number).
            version: negotiated.map(|v| server.and_then(|s| s.selected).unwrap_or(v.0)),
            cipher: server.map(|s| s.cipher),
            curve: server.and_then(|s| s.group),
            server_name: f.sni(),
            resumed: f.resumed(),
            last_alert: match f.answer {
                Some(crate::tls::ServerAnswer::Alert { description, .. }) => Some(description),
                _ => None,
            },
            next_protocol: server.and_then(|s| s.alpn.as_deref()),
            established: (f.outcome() != Outcome::Negotiated).then_some(false),
            server_version: server.map(|s| s.hello_version),
            client_version: client
                .filter(|c| !c.sslv2_format)
                .map(|c| c.hello_version.0),
            client_ciphers: client
                .and_then(|c| c.detail.as_deref())
                .map(|d| &*d.ciphers),
            client_supported_versions: client.and_then(|c| c.supported_versions.as_deref()),
            server_supported_version: server.and_then(|s| s.selected),
            ja4: client
                .and_then(|c| c.fingerprint.as_ref())
                .map(|fp| &fp.ja4_bytes()[..]),
        }
    }
}

/// One tab-separated line.
pub fn write_tsv(ev: &FlowEvent, policies: &PolicySet, out: &mut Vec<u8>) {
    let f = &ev.flow;
    let r = Row::of(ev);
    epoch(out, f.ts_ns);
    out.push(b'\t');
    out.extend_from_slice(&uid(ev));
    out.push(b'\t');
    json::ip_text(out, f.client_ip);
    out.push(b'\t');
    json::decimal(out, u64::from(f.client_port));
    out.push(b'\t');
    json::ip_text(out, f.server_ip);
    out.push(b'\t');
    json::decimal(out, u64::from(f.server_port));
    let tab = |out: &mut Vec<u8>| out.push(b'\t');
    tab(out);
    opt(out, r.version, version_text);
    tab(out);
    opt(out, r.cipher, |o, c| named(o, cipher_name(c), c));
    tab(out);
    opt(out, r.curve, |o, g| named(o, group_name(g), g));
    tab(out);
    opt(out, r.server_name, |o, s| {
        tsv_string(o, s.as_bytes(), false)
    });
    tab(out);
    opt(out, r.resumed, tsv_bool);
    tab(out);
    opt(out, r.last_alert, alert_text);
    tab(out);
    opt(out, r.next_protocol, |o, s| {
        tsv_string(o, s.as_bytes(), false)
    });
    tab(out);
    opt(out, r.established, tsv_bool);
    tab(out);
    out.push(b'-'); // ssl_history
    tab(out);
    opt(out, r.server_version, |o, v| json::decimal(o, u64::from(v)));
    tab(out);
    opt(out, r.client_version, |o, v| json::decimal(o, u64::from(v)));
    tab(out);
    opt(out, r.client_ciphers, |o, list| {
        counts(o, list.iter().map(|&c| u64::from(c)))
    });
    tab(out);
    opt(out, r.client_supported_versions, |o, list| {
        counts(o, list.iter().map(|v| u64::from(v.0)))
    });
    tab(out);
    opt(out, r.server_supported_version, |o, v| {
        json::decimal(o, u64::from(v))
    });
    tab(out);
    opt(out, r.ja4, |o, j| tsv_string(o, j, false));
    if !policies.is_empty() {
        tab(out);
        for (i, (name, verdict)) in policy_verdict_items(ev, policies).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            tsv_string(out, name.as_bytes(), true);
            out.push(b':');
            out.extend_from_slice(verdict.as_bytes());
        }
    }
    out.push(b'\n');
}

/// One line as Zeek's JSON writer writes it: unset fields left out, `ts`
/// as seconds with six decimals, vectors as arrays.
pub fn write_json(ev: &FlowEvent, policies: &PolicySet, out: &mut Vec<u8>) {
    let f = &ev.flow;
    let r = Row::of(ev);
    let mut l = Line::begin(out);
    l.raw_with(json_key!("ts"), |o| epoch(o, f.ts_ns));
    l.plain_with(json_key!("uid"), |o| o.extend_from_slice(&uid(ev)));
    l.ip(json_key!("id.orig_h"), f.client_ip);
    l.u64(json_key!("id.orig_p"), u64::from(f.client_port));
    l.ip(json_key!("id.resp_h"), f.server_ip);
    l.u64(json_key!("id.resp_p"), u64::from(f.server_port));
    if let Some(v) = r.version {
        l.plain_with(json_key!("version"), |o| version_text(o, v));
    }
    if let Some(c) = r.cipher {
        l.plain_with(json_key!("cipher"), |o| named(o, cipher_name(c), c));
    }
    if let Some(g) = r.curve {
        l.plain_with(json_key!("curve"), |o| named(o, group_name(g), g));
    }
    if let Some(s) = r.server_name {
        l.str(json_key!("server_name"), s);
    }
    if let Some(b) = r.resumed {
        l.bool(json_key!("resumed"), b);
    }
    if let Some(a) = r.last_alert {
        l.plain_with(json_key!("last_alert"), |o| alert_text(o, a));
    }
    if let Some(p) = r.next_protocol {
        l.str(json_key!("next_protocol"), p);
    }
    if let Some(b) = r.established {
        l.bool(json_key!("established"), b);
    }
    if let Some(v) = r.server_version {
        l.u64(json_key!("server_version"), u64::from(v));
    }
    if let Some(v) = r.client_version {
        l.u64(json_key!("client_version"), u64::from(v));
    }
    if let Some(list) = r.client_ciphers {
        l.array(json_key!("client_ciphers"), |a| {
            list.iter().for_each(|&c| a.u64(u64::from(c)))
        });
    }
    if let Some(list) = r.client_supported_versions {
        l.array(json_key!("client_supported_versions"), |a| {
            list.iter().for_each(|v| a.u64(u64::from(v.0)))
        });
    }
    if let Some(v) = r.server_supported_version {
        l.u64(json_key!("server_supported_version"), u64::from(v));
    }
    if let Some(j) = r.ja4 {
        l.plain_with(json_key!("ja4"), |o| o.extend_from_slice(j));
    }
    if !policies.is_empty() {
        l.array(json_key!("policy_verdicts"), |a| {
            for (name, verdict) in policy_verdict_items(ev, policies) {
                a.plain_with(|o| {
                    o.extend_from_slice(name.as_bytes());
                    o.push(b':');
                    o.extend_from_slice(verdict.as_bytes());
                });
            }
        });
    }
    l.end();
    out.push(b'\n');
}

/// Seconds since the epoch with six decimals (Zeek's `time`).
fn epoch(out: &mut Vec<u8>, ns: u64) {
    json::decimal(out, ns / 1_000_000_000);
    out.push(b'.');
    let digits = out.len();
    // 1 and six digits, the 1 then taken out: the zeros stay.
    json::decimal(out, 1_000_000 + ns / 1_000 % 1_000_000);
    out.remove(digits);
}

/// A value, or `-` when unset.
fn opt<T>(out: &mut Vec<u8>, v: Option<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        Some(v) => write(out, v),
        None => out.push(b'-'),
    }
}

fn tsv_bool(out: &mut Vec<u8>, b: bool) {
    out.push(if b { b'T' } else { b'F' });
}

/// A vector of counts: comma-separated, `(empty)` when empty.
fn counts(out: &mut Vec<u8>, items: impl Iterator<Item = u64>) {
    let start = out.len();
    for (i, v) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::decimal(out, v);
    }
    if out.len() == start {
        out.extend_from_slice(b"(empty)");
    }
}

/// A string as Zeek's ASCII writer writes it: `(empty)` when empty; a value
/// of exactly `-` or `(empty)` with its first byte escaped; the separators
/// (`\t`, and `,` inside a vector), the escape's own backslash and bytes
/// that are not printable (control bytes, and bytes of invalid UTF-8) as
/// `\xNN`.
fn tsv_string(out: &mut Vec<u8>, s: &[u8], in_vector: bool) {
    if s.is_empty() {
        out.extend_from_slice(b"(empty)");
        return;
    }
    let reserved = s == b"-" || s == b"(empty)";
    let text = String::from_utf8_lossy(s);
    let valid = matches!(text, std::borrow::Cow::Borrowed(_));
    let escape = |out: &mut Vec<u8>, b: u8| {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(&[
            b'\\',
            b'x',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 15)],
        ]);
    };
    for (i, &b) in s.iter().enumerate() {
        let special = (reserved && i == 0)
            || b < 0x20
            || b == 0x7f
            || b == b'\\'
            || (in_vector && b == b',')
            || (!valid && b >= 0x80);
        if special {
            escape(out, b);
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tsv(s: &[u8]) -> String {
        let mut out = Vec::new();
        tsv_string(&mut out, s, false);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn zeek_strings_escape_as_zeek() {
        assert_eq!(tsv(b""), "(empty)");
        assert_eq!(tsv(b"-"), "\\x2d");
        assert_eq!(tsv(b"(empty)"), "\\x28empty)");
        assert_eq!(tsv(b"a\tb\\c\x01"), "a\\x09b\\x5cc\\x01");
        assert_eq!(tsv("é.example".as_bytes()), "é.example");
        assert_eq!(tsv(b"\xff.example"), "\\xff.example");
        let mut out = Vec::new();
        tsv_string(&mut out, b"a,b", true);
        assert_eq!(out, b"a\\x2cb");
    }

    #[test]
    fn zeek_versions_and_dates() {
        let text = |v| {
            let mut out = Vec::new();
            version_text(&mut out, v);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(0x0303), "TLSv12");
        assert_eq!(text(0x7f17), "TLSv13-draft23");
        assert_eq!(text(0x0305), "unknown-773");
        let mut out = Vec::new();
        zeek_date(&mut out, 1_798_761_600_004_111_999);
        assert_eq!(out, b"2027-01-01-00-00-00");
        let mut out = Vec::new();
        counts(&mut out, [].into_iter());
        assert_eq!(out, b"(empty)");
    }
}
