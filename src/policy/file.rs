//! Policy files: a server TLS policy in TOML or JSON, checked entry by
//! entry.
//!
//! Input: a file's text (at most 64 KiB). Output: a [`ServerPolicy`], or
//! every mistake found (up to 20), each as `FILE:LINE: what is wrong`. The
//! keys:
//!
//! ```toml
//! name = "corp-2027"                      # label value: [a-z0-9][a-z0-9._-]*
//! title = "What it is, in one line"       # optional
//! source = "Where it is published"        # optional
//! versions = ["TLSv1.2", "TLSv1.3"]
//! cipher_suites = ["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
//! # or per version: [cipher_suites] "TLSv1.2" = [...] "TLSv1.3" = [...]
//! groups = ["x25519", "secp256r1"]
//! signature_algorithms = ["ecdsa_secp256r1_sha256", "rsa_pss_rsae_sha256"]
//! require = ["pq-hybrid-group"]           # optional
//! ```
//!
//! Names are the IANA registries' (a value may also be written `0x1301`);
//! each suite applies at the versions the RFCs allow it (TLS 1.3 suites at
//! TLS 1.3 only; AEAD and SHA-256 suites from TLS 1.2). A policy must be
//! able to complete a handshake at every version it accepts.

use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::eval::{is_ec_group, tls13_sigalg};
use super::{Authentication, KeyExchange, Requirement, ServerPolicy, Suite, VERSIONS, version_bit};
use crate::tls::names::{group_name, sigalg_name, version_name};

/// Largest policy file read.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
const MAX_ERRORS: usize = 20;
const KEYS: [&str; 8] = [
    "name",
    "title",
    "source",
    "versions",
    "cipher_suites",
    "groups",
    "signature_algorithms",
    "require",
];

/// Reads and checks the policy file at `path`.
pub fn load(path: &Path) -> Result<ServerPolicy, String> {
    use std::io::Read;
    let shown = path.display();
    let f = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{shown}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{shown}: larger than {MAX_FILE_BYTES} bytes: not a policy file"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{shown}: not UTF-8 text"))?;
    parse(&shown.to_string(), &text)
}

/// A value of the file and the line it is on.
#[derive(Clone, Debug)]
struct Item {
    text: String,
    line: usize,
}

enum Value {
    Text(Item),
    List(Vec<Item>),
    /// `cipher_suites` per version: each version's name and list.
    Table(Vec<(Item, Vec<Item>)>),
    /// Anything else, by its type's name.
    Other(&'static str),
}

struct Entry {
    key: Item,
    value: Value,
}

/// Checks a policy file's text; `origin` names it in errors. JSON when the
/// text starts with `{`, else TOML.
pub fn parse(origin: &str, text: &str) -> Result<ServerPolicy, String> {
    let entries = if text.trim_start().starts_with('{') {
        json_entries(origin, text)?
    } else {
        toml_entries(origin, text)?
    };
    let mut errors = Errors {
        origin,
        list: Vec::new(),
    };
    let policy = build(&entries, &mut errors);
    match policy {
        Some(p) if errors.list.is_empty() => Ok(p),
        _ => Err(errors.list.join("\n")),
    }
}

/// The 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    let end = at.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn toml_entries(origin: &str, text: &str) -> Result<Vec<Entry>, String> {
    let table = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        format!("{origin}:{line}: {}", e.message().trim_end())
    })?;
    let item = |s: &str, at: usize| Item {
        text: s.to_string(),
        line: line_of(text, at),
    };
    let list = |items: &[toml::Spanned<DeValue<'_>>]| -> Result<Vec<Item>, String> {
        let mut out = Vec::with_capacity(items.len());
        for v in items {
            match v.get_ref() {
                DeValue::String(s) => out.push(item(s, v.span().start)),
                other => {
                    return Err(format!(
                        "{origin}:{}: expected a string, not {}",
                        line_of(text, v.span().start),
                        other.type_str()
                    ));
                }
            }
        }
        Ok(out)
    };
    let mut out = Vec::new();
    for (k, v) in table.get_ref().iter() {
        let key = item(k.get_ref(), k.span().start);
        let value = match v.get_ref() {
            DeValue::String(s) => Value::Text(item(s, v.span().start)),
            DeValue::Array(items) => Value::List(list(items)?),
            DeValue::Table(t) => {
                let mut rows = Vec::new();
                for (k, v) in t.iter() {
                    let DeValue::Array(items) = v.get_ref() else {
                        return Err(format!(
                            "{origin}:{}: {}: expected a list of cipher suites",
                            line_of(text, v.span().start),
                            k.get_ref()
                        ));
                    };
                    rows.push((item(k.get_ref(), k.span().start), list(items)?));
                }
                Value::Table(rows)
            }
            other => Value::Other(other.type_str()),
        };
        out.push(Entry { key, value });
    }
    Ok(out)
}

/// Where `needle` (a JSON string, quoted) is, searching from byte `from`.
fn json_find(text: &str, from: usize, needle: &str) -> Option<usize> {
    let quoted = serde_json::to_string(needle).ok()?;
    text.get(from..)?.find(&quoted).map(|i| from + i)
}

fn json_entries(origin: &str, text: &str) -> Result<Vec<Entry>, String> {
    use serde_json::Value as J;
    let doc: J =
        serde_json::from_str(text).map_err(|e| format!("{origin}:{}: {e}", e.line().max(1)))?;
    let J::Object(map) = doc else {
        return Err(format!("{origin}:1: expected an object of policy keys"));
    };
    let type_name = |v: &J| match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "a list",
        J::Object(_) => "an object",
    };
    // A value's line: the first place it is written after its key.
    let item = |s: &str, from: usize| {
        let at = json_find(text, from, s).unwrap_or(from);
        (
            Item {
                text: s.to_string(),
                line: line_of(text, at),
            },
            at,
        )
    };
    let list = |items: &[J], from: usize| -> Result<Vec<Item>, String> {
        let mut out = Vec::with_capacity(items.len());
        let mut at = from;
        for v in items {
            match v {
                J::String(s) => {
                    let (it, found) = item(s, at);
                    at = found;
                    out.push(it);
                }
                other => {
                    return Err(format!(
                        "{origin}:{}: expected a string, not {}",
                        line_of(text, at),
                        type_name(other)
                    ));
                }
            }
        }
        Ok(out)
    };
    let mut out = Vec::new();
    for (k, v) in &map {
        let (key, key_at) = item(k, 0);
        let value = match v {
            J::String(s) => Value::Text(item(s, key_at + k.len()).0),
            J::Array(items) => Value::List(list(items, key_at + k.len())?),
            J::Object(rows) => {
                let mut table = Vec::new();
                for (rk, rv) in rows {
                    let (rkey, rat) = item(rk, key_at);
                    let J::Array(items) = rv else {
                        return Err(format!(
                            "{origin}:{}: {rk}: expected a list of cipher suites",
                            rkey.line
                        ));
                    };
                    table.push((rkey, list(items, rat + rk.len())?));
                }
                Value::Table(table)
            }
            other => Value::Other(type_name(other)),
        };
        out.push(Entry { key, value });
    }
    Ok(out)
}

struct Errors<'a> {
    origin: &'a str,
    list: Vec<String>,
}

impl Errors<'_> {
    fn at(&mut self, line: usize, msg: impl std::fmt::Display) {
        if self.list.len() < MAX_ERRORS {
            self.list.push(format!("{}:{line}: {msg}", self.origin));
        }
    }
}

/// The closest of `known` to `given`, if close enough to suggest.
fn closest<'a>(given: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| {
            (
                strsim::jaro_winkler(&k.to_ascii_lowercase(), &given.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

fn hint(close: Option<&str>) -> String {
    close.map_or(String::new(), |k| format!(" (did you mean {k:?}?)"))
}

/// A value written as hex (`0x1301`).
fn hex(s: &str) -> Option<u16> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u16::from_str_radix(digits, 16).ok()
}

/// Every value a registry names, with its name.
fn registry(name_of: fn(u16) -> Option<&'static str>) -> impl Iterator<Item = (u16, &'static str)> {
    (0..=u16::MAX).filter_map(move |id| name_of(id).map(|n| (id, n)))
}

fn cipher_name(id: u16) -> Option<&'static str> {
    crate::tls::names::cipher_name(id)
}

pub fn parse_version(s: &str) -> Option<u16> {
    let folded: String = s
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | 'v'))
        .collect();
    Some(match folded.as_str() {
        "ssl3" | "ssl3.0" => 0x0300,
        "tls1" | "tls1.0" => 0x0301,
        "tls1.1" => 0x0302,
        "tls1.2" => 0x0303,
        "tls1.3" => 0x0304,
        _ => return None,
    })
}

pub fn parse_suite(s: &str) -> Option<u16> {
    hex(s)
        .or_else(|| tls_parser::TlsCipherSuite::from_name(&s.to_ascii_uppercase()).map(|c| c.id.0))
}

pub fn parse_group(s: &str) -> Option<u16> {
    let alias = match s.to_ascii_lowercase().as_str() {
        "prime256v1" | "p-256" | "p256" => Some(23),
        "p-384" | "p384" => Some(24),
        "p-521" | "p521" => Some(25),
        _ => None,
    };
    alias.or_else(|| hex(s)).or_else(|| {
        registry(group_name)
            .find(|(_, n)| n.eq_ignore_ascii_case(s))
            .map(|(id, _)| id)
    })
}

pub fn parse_sigalg(s: &str) -> Option<u16> {
    hex(s).or_else(|| {
        registry(sigalg_name)
            .find(|(_, n)| n.eq_ignore_ascii_case(s))
            .map(|(id, _)| id)
    })
}

/// The versions a suite may be used at by the RFCs (a version mask), and
/// how it agrees keys and authenticates.
fn suite_rules(id: u16) -> (u8, KeyExchange, Authentication) {
    use tls_parser::{TlsCipherAu as Au, TlsCipherKx as Kx, TlsCipherMac, TlsPRF};
    let below_13 = VERSIONS[..4].iter().fold(0, |m, v| m | version_bit(*v));
    let Some(c) = tls_parser::TlsCipherSuite::from_id(id) else {
        // An unnamed value: any version before TLS 1.3, nothing known.
        return (below_13, KeyExchange::Other, Authentication::Any);
    };
    let kx = match c.kx {
        Kx::Tls13 => KeyExchange::Tls13,
        Kx::Ecdhe => KeyExchange::Ecdhe,
        Kx::Dhe => KeyExchange::Dhe,
        Kx::Rsa => KeyExchange::Rsa,
        _ => KeyExchange::Other,
    };
    let auth = match c.au {
        Au::Rsa => Authentication::Rsa,
        Au::Ecdsa => Authentication::Ecdsa,
        Au::Dss => Authentication::Dss,
        _ => Authentication::Any,
    };
    let versions = if kx == KeyExchange::Tls13 {
        version_bit(0x0304)
    } else if c.mac == TlsCipherMac::Aead || c.prf != TlsPRF::Default {
        version_bit(0x0303)
    } else {
        below_13
    };
    (versions, kx, auth)
}

fn build(entries: &[Entry], e: &mut Errors<'_>) -> Option<ServerPolicy> {
    let find = |k: &str| entries.iter().find(|en| en.key.text == k);
    for en in entries {
        if !KEYS.contains(&en.key.text.as_str()) {
            let close = closest(&en.key.text, KEYS.iter().copied());
            e.at(
                en.key.line,
                format!("unknown key {:?}{}", en.key.text, hint(close)),
            );
        }
    }
    let text_of = |k: &str, e: &mut Errors<'_>| -> Option<Item> {
        match &find(k)?.value {
            Value::Text(t) => Some(t.clone()),
            _ => {
                e.at(find(k)?.key.line, format!("{k}: expected a string"));
                None
            }
        }
    };
    let list_of = |k: &str, e: &mut Errors<'_>| -> Vec<Item> {
        match find(k).map(|en| &en.value) {
            None => Vec::new(),
            Some(Value::List(l)) => l.clone(),
            Some(Value::Text(t)) => vec![t.clone()],
            Some(_) => {
                if let Some(en) = find(k) {
                    e.at(en.key.line, format!("{k}: expected a list of strings"));
                }
                Vec::new()
            }
        }
    };
    for en in entries {
        if let Value::Other(t) = en.value {
            e.at(
                en.key.line,
                format!("{}: expected a string or a list, not {t}", en.key.text),
            );
        }
    }

    let Some(name) = text_of("name", e) else {
        if find("name").is_none() {
            e.at(
                1,
                "no `name`: every policy has one (lower-case letters, digits, '.', '_', '-')",
            );
        }
        return None;
    };
    let good_name = !name.text.is_empty()
        && name.text.len() <= 40
        && name.text.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || (i > 0 && matches!(b, b'.' | b'_' | b'-'))
        });
    if !good_name {
        e.at(
            name.line,
            format!(
                "name {:?}: at most 40 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
                name.text
            ),
        );
    }
    let title = text_of("title", e).map_or_else(|| name.text.clone(), |t| t.text);
    let source = text_of("source", e).map_or_else(|| e.origin.to_string(), |t| t.text);

    // Versions.
    let mut versions = 0u8;
    let versions_line = find("versions").map_or(1, |en| en.key.line);
    for v in list_of("versions", e) {
        match parse_version(&v.text) {
            Some(id) => versions |= version_bit(id),
            None => e.at(
                v.line,
                format!(
                    "unknown version {:?} (SSLv3, TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3)",
                    v.text
                ),
            ),
        }
    }
    if versions == 0 && find("versions").is_none() {
        e.at(
            1,
            "no `versions`: list the protocol versions the server accepts",
        );
    } else if versions == 0 {
        e.at(versions_line, "versions: accepts no version");
    }

    // Cipher suites, each at the versions where it applies.
    let mut suites = Vec::new();
    let mut suite = |item: &Item, at: u8, listed_for: Option<&str>, e: &mut Errors<'_>| {
        let Some(id) = parse_suite(&item.text) else {
            let close = closest(&item.text, registry(cipher_name).map(|(_, n)| n));
            let openssl = if item.text.contains('-') && !item.text.starts_with("TLS_") {
                " (IANA names, as `openssl ciphers -stdname` prints them)"
            } else {
                ""
            };
            e.at(
                item.line,
                format!(
                    "unknown cipher suite {:?}{}{openssl}",
                    item.text,
                    hint(close)
                ),
            );
            return;
        };
        let (allowed, kx, auth) = suite_rules(id);
        let used = allowed & at;
        if used == 0 {
            let at_what = match listed_for {
                Some(v) => format!("listed for {v}"),
                None => "the policy accepts no version".to_string(),
            };
            let where_ok = VERSIONS
                .iter()
                .filter(|v| allowed & version_bit(**v) != 0)
                .filter_map(|v| version_name(*v))
                .collect::<Vec<_>>()
                .join(", ");
            e.at(
                item.line,
                format!(
                    "{}: {at_what} it can be used at (it is for {where_ok})",
                    item.text
                ),
            );
            return;
        }
        suites.push(Suite {
            id,
            versions: used,
            kx,
            auth,
        });
    };
    match find("cipher_suites").map(|en| (&en.value, en.key.line)) {
        None => e.at(1, "no `cipher_suites`: list the suites the server accepts"),
        Some((Value::List(items), _)) => {
            for it in items {
                suite(it, versions, None, e);
            }
        }
        Some((Value::Table(rows), _)) => {
            for (v, items) in rows {
                match parse_version(&v.text) {
                    Some(id) if versions & version_bit(id) != 0 => {
                        for it in items {
                            suite(it, version_bit(id), Some(&v.text), e);
                        }
                    }
                    Some(_) => e.at(v.line, format!("{}: not one of `versions`", v.text)),
                    None => e.at(v.line, format!("unknown version {:?}", v.text)),
                }
            }
        }
        Some((_, line)) => e.at(
            line,
            "cipher_suites: expected a list, or a table of lists by version",
        ),
    }

    let mut groups = Vec::new();
    for g in list_of("groups", e) {
        match parse_group(&g.text) {
            Some(id) => groups.push(id),
            None => {
                let close = closest(&g.text, registry(group_name).map(|(_, n)| n));
                e.at(g.line, format!("unknown group {:?}{}", g.text, hint(close)));
            }
        }
    }
    let mut sigalgs = Vec::new();
    for s in list_of("signature_algorithms", e) {
        match parse_sigalg(&s.text) {
            Some(id) => sigalgs.push(id),
            None => {
                let close = closest(&s.text, registry(sigalg_name).map(|(_, n)| n));
                e.at(
                    s.line,
                    format!("unknown signature algorithm {:?}{}", s.text, hint(close)),
                );
            }
        }
    }
    let mut require = Vec::new();
    for r in list_of("require", e) {
        match Requirement::parse(&r.text) {
            Some(req) => require.push(req),
            None => {
                let names = Requirement::ALL.map(Requirement::as_str);
                e.at(
                    r.line,
                    format!("unknown requirement {:?} ({})", r.text, names.join(", ")),
                );
            }
        }
    }

    // Every accepted version can complete a handshake.
    if e.list.is_empty() {
        let groups_line = find("groups").map_or(versions_line, |en| en.key.line);
        let sig_line = find("signature_algorithms").map_or(versions_line, |en| en.key.line);
        for v in VERSIONS {
            let bit = version_bit(v);
            let vname = version_name(v).unwrap_or("?");
            if versions & bit != 0 && !suites.iter().any(|s| s.versions & bit != 0) {
                e.at(
                    versions_line,
                    format!("accepts {vname} but lists no cipher suite usable at {vname}"),
                );
            }
        }
        if versions & version_bit(0x0304) != 0 {
            if groups.is_empty() {
                e.at(
                    groups_line,
                    "accepts TLSv1.3, which needs at least one group",
                );
            }
            if !sigalgs.iter().any(|s| tls13_sigalg(*s)) {
                e.at(sig_line, "accepts TLSv1.3, which needs a signature algorithm TLS 1.3 allows (ECDSA, RSA-PSS, EdDSA)");
            }
        }
        let key_of = |a: Authentication| match a {
            Authentication::Rsa => "an RSA",
            Authentication::Ecdsa => "an ECDSA or EdDSA",
            Authentication::Dss => "a DSA",
            Authentication::Any => "a",
        };
        for s in &suites {
            let name = cipher_name(s.id).unwrap_or("suite");
            if s.kx == KeyExchange::Ecdhe && !groups.iter().any(|g| is_ec_group(*g)) {
                e.at(
                    groups_line,
                    format!("{name} needs an elliptic-curve group (x25519, secp256r1, ...)"),
                );
            }
            let key = if s.kx == KeyExchange::Rsa {
                Authentication::Rsa
            } else {
                s.auth
            };
            if key != Authentication::Any
                && !sigalgs.iter().any(|g| super::eval::sigalg_key(*g) == key)
            {
                e.at(
                    sig_line,
                    format!(
                        "{name} needs {} key: signature_algorithms lists none",
                        key_of(key)
                    ),
                );
            }
        }
    }
    Some(ServerPolicy::new(
        name.text, title, source, versions, suites, groups, sigalgs, require,
    ))
}

/// A policy as a policy file (TOML) that reads back as the same policy.
pub fn to_toml(p: &ServerPolicy) -> String {
    use std::fmt::Write as _;
    // (a JSON string is a TOML basic string)
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let list = |items: Vec<String>| {
        let inner: Vec<String> = items.iter().map(|s| format!("  {},", quoted(s))).collect();
        format!("[\n{}\n]", inner.join("\n"))
    };
    let name_or_hex =
        |name: Option<&str>, id: u16| name.map_or_else(|| format!("0x{id:04x}"), str::to_string);
    let mut out = String::new();
    let _ = writeln!(out, "name = {}", quoted(&p.name));
    let _ = writeln!(out, "title = {}", quoted(&p.title));
    let _ = writeln!(out, "source = {}", quoted(&p.source));
    let versions: Vec<String> = p.version_names().into_iter().map(str::to_string).collect();
    let _ = writeln!(out, "versions = {}", list(versions));
    let groups = p
        .groups
        .iter()
        .map(|g| name_or_hex(group_name(*g), *g))
        .collect();
    let _ = writeln!(out, "groups = {}", list(groups));
    let sigalgs = p
        .sigalgs
        .iter()
        .map(|s| name_or_hex(sigalg_name(*s), *s))
        .collect();
    let _ = writeln!(out, "signature_algorithms = {}", list(sigalgs));
    let require = p.require.iter().map(|r| r.as_str().to_string()).collect();
    let _ = writeln!(out, "require = {}", list(require));
    // Per version: what the policy accepts at each exactly.
    out.push_str("\n[cipher_suites]\n");
    for v in VERSIONS {
        let bit = version_bit(v);
        if p.versions & bit == 0 {
            continue;
        }
        let suites = (p.suites.iter())
            .filter(|s| s.versions & bit != 0)
            .map(|s| name_or_hex(cipher_name(s.id), s.id))
            .collect();
        let _ = writeln!(
            out,
            "{} = {}",
            quoted(version_name(v).unwrap_or("?")),
            list(suites)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "corp-2027"
title = "Corp TLS standard"
versions = ["TLSv1.2", "TLS 1.3"]
cipher_suites = ["TLS_AES_128_GCM_SHA256", "0xc02f", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"]
groups = ["x25519", "prime256v1"]
signature_algorithms = ["rsa_pss_rsae_sha256", "rsa_pkcs1_sha256"]
require = ["extended-master-secret"]
"#;

    #[test]
    fn policy_file_toml() {
        let p = parse("corp.toml", GOOD).unwrap();
        assert_eq!(p.name, "corp-2027");
        assert_eq!(p.source, "corp.toml");
        assert_eq!(p.version_names(), ["TLSv1.2", "TLSv1.3"]);
        assert_eq!(p.suites.len(), 3);
        assert_eq!(
            p.suite(0x1301).map(|s| s.versions),
            Some(version_bit(0x0304))
        );
        assert_eq!(
            p.suite(0xc013).map(|s| s.versions),
            Some(version_bit(0x0303))
        );
        assert_eq!(p.groups, [29, 23]);
        assert_eq!(p.require, [Requirement::ExtendedMasterSecret]);
    }

    #[test]
    fn policy_file_json_same_as_toml() {
        let json = r#"{
  "name": "corp-2027",
  "title": "Corp TLS standard",
  "source": "corp.toml",
  "versions": ["TLSv1.2", "TLSv1.3"],
  "cipher_suites": ["TLS_AES_128_GCM_SHA256", "0xc02f", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"],
  "groups": ["x25519", "secp256r1"],
  "signature_algorithms": ["rsa_pss_rsae_sha256", "rsa_pkcs1_sha256"],
  "require": ["extended-master-secret"]
}"#;
        assert_eq!(parse("corp.json", json), parse("corp.toml", GOOD));
    }

    #[test]
    fn policy_file_errors_name_lines() {
        let bad = r#"name = "Corp"
versions = ["TLSv1.2", "TLSv1.4"]
cipher_suites = [
  "TLS_AES_128_GCM_SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA265",
]
groups = ["x25519", "secp265r1"]
signature_algorithms = ["rsa_pss_rsae_sha256", "rsa_pss_sha256"]
require = ["quantum"]
colour = "blue"
"#;
        let err = parse("p.toml", bad).unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        let expect = [
            "p.toml:11: unknown key \"colour\"",
            "p.toml:1: name \"Corp\"",
            "p.toml:2: unknown version \"TLSv1.4\"",
            "p.toml:4: TLS_AES_128_GCM_SHA256: the policy accepts no version it can be used at (it is for TLSv1.3)",
            "p.toml:5: unknown cipher suite \"ECDHE-RSA-AES128-GCM-SHA256\"",
            "p.toml:6: unknown cipher suite \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA265\" (did you mean \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"?)",
            "p.toml:8: unknown group \"secp265r1\" (did you mean",
            "p.toml:9: unknown signature algorithm \"rsa_pss_sha256\"",
            "p.toml:10: unknown requirement \"quantum\"",
        ];
        assert_eq!(lines.len(), expect.len(), "{err}");
        for (got, want) in lines.iter().zip(expect) {
            assert!(got.starts_with(want), "{got}\n  wanted {want}");
        }
        assert!(err.contains("openssl ciphers -stdname"));
    }

    #[test]
    fn policy_file_json_errors_name_lines() {
        let bad = "{\n  \"name\": \"x\",\n  \"versions\": [\"TLSv1.2\"],\n  \"cipher_suites\": {\n    \"TLSv1.2\": [\"TLS_AES_128_GCM_SHA256\"]\n  }\n}";
        let err = parse("p.json", bad).unwrap_err();
        assert!(
            err.starts_with("p.json:5: TLS_AES_128_GCM_SHA256: listed for TLSv1.2"),
            "{err}"
        );
        let err = parse("p.json", "{\"name\": \"x\",\n \"versions\": [1]}").unwrap_err();
        assert!(err.starts_with("p.json:"), "{err}");
        let err = parse("p.json", "{\n\"name\": \"x\",\n}").unwrap_err();
        assert!(err.starts_with("p.json:3: trailing comma"), "{err}");
    }

    #[test]
    fn policy_file_must_complete_a_handshake() {
        let err = parse(
            "p.toml",
            "name = \"x\"\nversions = [\"TLSv1.2\", \"TLSv1.3\"]\ncipher_suites = [\"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\"]\ngroups = [\"ffdhe2048\"]\nsignature_algorithms = [\"rsa_pkcs1_sha256\"]\n",
        )
        .unwrap_err();
        for want in [
            "p.toml:2: accepts TLSv1.3 but lists no cipher suite usable at TLSv1.3",
            "p.toml:5: accepts TLSv1.3, which needs a signature algorithm",
            "p.toml:4: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 needs an elliptic-curve group",
            "p.toml:5: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 needs an ECDSA or EdDSA key",
        ] {
            assert!(err.contains(want), "{err}\n  wanted {want}");
        }
    }

    #[test]
    fn policy_file_per_version_suites() {
        let p = parse(
            "p.toml",
            "name = \"cbc-in-1.0\"\nversions = [\"TLSv1.0\", \"TLSv1.2\"]\ngroups = [\"secp256r1\"]\nsignature_algorithms = [\"rsa_pkcs1_sha256\"]\n[cipher_suites]\n\"TLSv1.0\" = [\"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\"]\n\"TLSv1.2\" = [\"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"]\n",
        )
        .unwrap();
        assert_eq!(
            p.suite(0xc013).map(|s| s.versions),
            Some(version_bit(0x0301))
        );
        assert_eq!(
            p.suite(0xc02f).map(|s| s.versions),
            Some(version_bit(0x0303))
        );
        let err = parse(
            "p.toml",
            "name = \"x\"\nversions = [\"TLSv1.2\"]\n[cipher_suites]\n\"TLSv1.1\" = []\n",
        )
        .unwrap_err();
        assert!(
            err.contains("p.toml:4: TLSv1.1: not one of `versions`"),
            "{err}"
        );
    }

    /// The policy with its suites in id order (the written file groups
    /// them by version).
    fn by_id(mut p: ServerPolicy) -> ServerPolicy {
        p.suites.sort_by_key(|s| s.id);
        p
    }

    #[test]
    fn policy_file_written_reads_back() {
        for (name, _) in super::super::presets::ALL {
            let p = super::super::presets::get(name).unwrap();
            let again = parse("again.toml", &to_toml(&p)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(by_id(again), by_id(p), "{name}");
        }
        let p = parse("corp.toml", GOOD).unwrap();
        assert_eq!(by_id(parse("x", &to_toml(&p)).unwrap()), by_id(p));
    }

    #[test]
    fn policy_file_name_not_a_string_is_said_once() {
        let err = parse("p.toml", "versions = [\"TLSv1.3\"]\nname = [\"x\"]\n").unwrap_err();
        assert_eq!(err, "p.toml:2: name: expected a string");
        let err = parse("p.toml", "versions = [\"TLSv1.3\"]\n").unwrap_err();
        assert!(err.starts_with("p.toml:1: no `name`"), "{err}");
    }

    #[test]
    fn policy_file_garbage() {
        for text in [
            "",
            "\u{0}",
            "[",
            "{",
            "name = 1",
            "{\"name\": []}",
            "[[x]]\n",
            "x = {a = 1}",
        ] {
            assert!(parse("g", text).is_err(), "{text:?}");
        }
    }
}
