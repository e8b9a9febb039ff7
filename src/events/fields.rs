//! What the event layouts share (`layout.rs`): a flow's uid, version texts,
//! the names of wire values, and tlscensus' own facts for the layouts that
//! hold them in a namespace of their own.
//!
//! Input: a [`FlowEvent`] or a wire value. Output: text at the end of a
//! buffer. Invariant: the same flow of the same capture gets the same uid in
//! every layout and every run.

use super::json::Line;
use super::{FlowEvent, opt_version, socket_text, version_items};
use crate::json_key;
use crate::policy::{PolicySet, Reason, Verdict};
use crate::tls::Version;
use crate::tls::fingerprint::hex_into;
use crate::tls::names::{cipher_name, group_name};
use std::net::IpAddr;

/// tlscensus' own facts of the flow for the layouts that hold them in a
/// namespace of their own (ECS `tlscensus.*`, OCSF `unmapped.*`): the
/// native fields, with their native names and values, that the layout has
/// no field for. Unknown values are left out.
pub fn census_fields(l: &mut Line<'_>, ev: &FlowEvent, policies: &PolicySet) {
    let f = &ev.flow;
    let client = f.client.as_ref();
    let preamble = f.preamble.as_deref();
    let name = ev.target_name();
    l.bool(json_key!("legacy"), ev.legacy);
    l.plain(json_key!("outcome"), f.outcome().as_str());
    for (key, v) in [
        (json_key!("client_max_version"), f.client_max()),
        (json_key!("negotiated_version"), f.negotiated()),
        (
            json_key!("client_hello_version"),
            client.map(|c| c.hello_version),
        ),
    ] {
        if v.is_some() {
            opt_version(l, key, v);
        }
    }
    if let Some(c) = client {
        if let Some(list) = c.supported_versions.as_deref() {
            l.array(json_key!("client_versions"), |a| version_items(a, list));
        }
        l.bool(json_key!("sslv2_hello"), c.sslv2_format);
    }
    if let Some(alert) = ev.alert_text() {
        l.plain_with(json_key!("server_alert"), |o| alert.write(o));
    }
    l.bool(json_key!("target"), ev.matched.is_some());
    if let Some(m) = ev.matched {
        l.plain(json_key!("match"), m.as_str());
    }
    if let Some(account) = ev.matched_name().and_then(crate::targets::account_of) {
        l.plain(json_key!("account"), account);
    }
    if let Some(n) = name {
        l.str(json_key!("target_name"), n);
    }
    l.bool(json_key!("hello_retry"), ev.hello_retry());
    l.bool(json_key!("incomplete"), f.incomplete());
    l.plain(json_key!("preamble"), ev.preamble_kind().as_str());
    l.bool(
        json_key!("proxy"),
        preamble.is_some_and(|p| p.kind.is_proxy()),
    );
    if let Some(authority) = preamble.and_then(|p| p.authority.as_deref()) {
        l.str(json_key!("connect_authority"), authority);
    }
    if let Some(a) = preamble.and_then(|p| p.proxied_src) {
        l.str_with(json_key!("proxied_src"), |o| socket_text(o, a));
    }
    l.bool(json_key!("relayed"), ev.relayed);
    if let Some(fp) = client.and_then(|c| c.fingerprint.as_ref()) {
        l.plain_with(json_key!("ja4"), |o| o.extend_from_slice(fp.ja4_bytes()));
    }
    if let Some(s) = ev.service.as_ref() {
        l.plain(json_key!("service"), s.name);
        l.str(json_key!("destination"), &s.destination);
        if let Some(end) = s.tls_end {
            l.plain(json_key!("service_tls_end"), end);
        }
        if let Some(broken) = s.broken {
            l.bool(json_key!("service_broken"), broken);
        }
    }
    if let Some(label) = ev.client_label.as_deref() {
        l.str(json_key!("client_label"), label);
    }
    if let Some((_, source)) = ev.src_name.as_ref() {
        l.plain(json_key!("src_name_source"), source.as_str());
    }
    if let Some(raw) = client.and_then(|c| c.raw_fingerprint.as_deref()) {
        l.str(json_key!("ja4_r"), &raw.ja4_r);
        l.str(json_key!("ja3"), &raw.ja3);
    }
    policy_verdicts(l, ev, policies);
}

/// The flow's verdict under each server policy, when any is configured:
/// `"policies":[{"policy":NAME,"verdict":"pass"|"fail"|"unknown",
/// "reason":REASON[,"requirement":NAME]}]` (unknown: no whole hello).
pub fn policy_verdicts(l: &mut Line<'_>, ev: &FlowEvent, policies: &PolicySet) {
    if policies.is_empty() {
        return;
    }
    let verdicts = ev.flow.verdicts();
    l.array(json_key!("policies"), |a| {
        for (i, p) in policies.iter().enumerate() {
            let v = verdicts.get(i);
            let reason = v.map_or(Reason::NoHello, Verdict::reason);
            a.object(|o| {
                o.str(json_key!("policy"), &p.name);
                o.plain(json_key!("verdict"), reason.outcome().as_str());
                o.plain(json_key!("reason"), reason.as_str());
                if let Some(Verdict::Fail(_, Some(r))) = v {
                    o.plain(json_key!("requirement"), r.as_str());
                }
            });
        }
    });
}

/// The flow's verdicts as Zeek vectors hold them: `NAME:pass`,
/// `NAME:no_common_suite`, `NAME:missing_requirement:pq-hybrid-group`,
/// `NAME:no_hello`.
pub fn policy_verdict_items<'a>(
    ev: &FlowEvent,
    policies: &'a PolicySet,
) -> impl Iterator<Item = (&'a str, &'static str)> {
    let verdicts = ev.flow.verdicts();
    (policies.iter().enumerate()).map(move |(i, p)| {
        let text = verdicts
            .get(i)
            .map_or(Reason::NoHello.as_str(), Verdict::text);
        (p.name.as_str(), text)
    })
}

/// A flow's uid, as Zeek's are spelled: `C` and 17 base-62 digits of a
/// 96-bit hash of the flow's time and endpoints. The same flow in the same
/// capture gets the same uid in every layout and every run.
pub fn uid(ev: &FlowEvent) -> [u8; 18] {
    let f = &ev.flow;
    let mut a = Fnv::new(0xcbf2_9ce4_8422_2325);
    let mut b = Fnv::new(0x6c62_272e_07bb_0142);
    for h in [&mut a, &mut b] {
        h.write(&f.ts_ns.to_le_bytes());
        for (ip, port) in [(f.client_ip, f.client_port), (f.server_ip, f.server_port)] {
            match ip {
                IpAddr::V4(v4) => h.write(&v4.octets()),
                IpAddr::V6(v6) => h.write(&v6.octets()),
            }
            h.write(&port.to_le_bytes());
        }
    }
    let mut n = u128::from(a.0) << 32 | u128::from(b.0 >> 32);
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = [b'C'; 18];
    for d in out[1..].iter_mut().rev() {
        *d = DIGITS[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// FNV-1a, 64 bits: a fixed hash, so uids do not change between runs.
struct Fnv(u64);

impl Fnv {
    fn new(basis: u64) -> Self {
        Fnv(basis)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A version as ECS and OCSF spell it: the number (`1.2`, `3.0`) and the
/// protocol (`tls`, `ssl`); `None` for a value that is no known version.
pub fn dotted_version(v: Version) -> Option<(&'static str, &'static str)> {
    Some(match v.canonical() {
        Version::SSL2 => ("2.0", "ssl"),
        Version::SSL3 => ("3.0", "ssl"),
        Version::TLS10 => ("1.0", "tls"),
        Version::TLS11 => ("1.1", "tls"),
        Version::TLS12 => ("1.2", "tls"),
        Version::TLS13 => ("1.3", "tls"),
        _ => return None,
    })
}

/// `0x` and four hex digits.
pub fn hex16(out: &mut Vec<u8>, v: u16) {
    let mut hex = [b'0', b'x', 0, 0, 0, 0];
    hex_into(&v.to_be_bytes(), &mut hex[2..]);
    out.extend_from_slice(&hex);
}

/// A cipher suite's IANA name, or `0x` and its four hex digits.
pub fn cipher_text(out: &mut Vec<u8>, id: u16) {
    match cipher_name(id) {
        Some(name) => out.extend_from_slice(name.as_bytes()),
        None => hex16(out, id),
    }
}

/// A named group's IANA name, or `0x` and its four hex digits.
pub fn group_text(out: &mut Vec<u8>, id: u16) {
    match group_name(id) {
        Some(name) => out.extend_from_slice(name.as_bytes()),
        None => hex16(out, id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::HandshakeSummary;

    fn event(port: u16, ts: u64) -> FlowEvent {
        let mut flow = HandshakeSummary::hello_for_test([10, 0, 0, 1], [10, 0, 0, 2], 0x0303, None);
        flow.client_port = port;
        flow.ts_ns = ts;
        FlowEvent::of_flow_for_test(flow)
    }

    #[test]
    fn uid_is_stable_and_distinct() {
        let a = uid(&event(40000, 1));
        assert_eq!(a, uid(&event(40000, 1)));
        assert_ne!(a, uid(&event(40001, 1)));
        assert_ne!(a, uid(&event(40000, 2)));
        assert_eq!(a[0], b'C');
        assert!(a[1..].iter().all(u8::is_ascii_alphanumeric));
    }

    #[test]
    fn version_and_value_texts() {
        assert_eq!(dotted_version(Version(0x7f17)), Some(("1.3", "tls")));
        assert_eq!(dotted_version(Version::SSL3), Some(("3.0", "ssl")));
        assert_eq!(dotted_version(Version(0xfefd)), None);
        let mut out = Vec::new();
        cipher_text(&mut out, 0x1302);
        out.push(b' ');
        cipher_text(&mut out, 0x2a2a);
        out.push(b' ');
        group_text(&mut out, 0x11ec);
        assert_eq!(out, b"TLS_AES_256_GCM_SHA384 0x2a2a X25519MLKEM768");
    }
}
