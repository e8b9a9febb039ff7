//! The event log: one JSON object per inventoried TLS flow, newline-delimited,
//! written by a dedicated thread so workers never wait on the disk for long.
//!
//! Input: [`FlowEvent`] values over a bounded channel. Output: NDJSON lines in a
//! file or on stdout. Invariants: in live mode the workers never wait for the
//! writer (a full queue drops the event, counted by reason); a write error is
//! said on stderr when it happens, counted, shown by `/healthz`, and retried
//! every second with the unwritten lines held (up to 1 MiB; beyond, dropped and
//! counted), so a freed disk resumes the log; a closed pipe (`| head`) ends the
//! writing quietly; `tlscensus_events_written_total` counts lines whose last
//! byte was written, nothing queued.

use std::net::IpAddr;
use std::sync::Arc;

use crate::hosts::Who;
use crate::hosts::names::NameSource;
pub use crate::metrics::Metrics;
use crate::policy::PolicySet;
use crate::preamble::Kind as PreambleKind;
use crate::targets::{Match, account_of};
use crate::tls::summary::known_alert;
use crate::tls::{HandshakeSummary, ServerAnswer, Version};

mod ecs;
mod fields;
pub mod json;
mod layout;
mod ocsf;
mod output;
pub mod sink;
mod zeek;

use crate::json_key;
pub use ecs::ECS_VERSION;
pub use fields::uid;
pub use layout::Layout;
pub use ocsf::OCSF_VERSION;
pub use output::*;

/// One inventoried flow's event: the flow's facts as the worker had them,
/// moved, not formatted (the writer thread writes the line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowEvent {
    /// The flow (without its certificate and DNS facts, which no event
    /// field shows and which must not be held in the queue).
    pub flow: HandshakeSummary,
    pub legacy: bool,
    /// How the server was recognised as a target; `None` for other flows.
    pub matched: Option<Match>,
    /// The target name the match came from, when it is not the SNI (for
    /// a `sni` match the flow holds the name).
    pub name: Option<Arc<str>>,
    /// The source is a --proxy: it relays a client's handshake.
    pub relayed: bool,
    /// The target flow's service and destination, once named.
    pub service: Option<ServiceOf>,
    /// The client-label catalogue's name for the JA4.
    pub client_label: Option<Arc<str>>,
    /// The source's passive host name when the flow was reported.
    pub src_name: Option<(Arc<str>, NameSource)>,
}

/// A target flow's service and destination, as the service table in use
/// when the flow was reported says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceOf {
    /// A name of `tlscensus services`, or `other` for a `--target` pattern
    /// no service covers.
    pub name: &'static str,
    pub destination: Arc<str>,
    /// The day the service stops accepting TLS 1.0/1.1.
    pub tls_end: Option<&'static str>,
    /// A legacy flow on or after that day (capture time).
    pub broken: Option<bool>,
}

impl FlowEvent {
    pub fn new(
        mut flow: HandshakeSummary,
        legacy: bool,
        matched: Option<(Match, Option<Arc<str>>)>,
        who: Who<'_>,
    ) -> FlowEvent {
        let (how, name) = match matched {
            Some((how, name)) => (Some(how), name),
            None => (None, None),
        };
        flow.certificate = None;
        flow.dns = None;
        let client_label = flow
            .client
            .as_ref()
            .and_then(|c| c.fingerprint.as_ref())
            .and_then(|f| who.labels.get(f.ja4_bytes()))
            .cloned();
        let src_name = who.name(flow.client_ip, flow.ts_ns);
        FlowEvent {
            flow,
            legacy,
            matched: how,
            name,
            relayed: false,
            service: None,
            client_label,
            src_name,
        }
    }

    /// Names the target flow's service and destination.
    pub fn with_service(mut self, service: Option<usize>, destination: Arc<str>) -> FlowEvent {
        use crate::targets::services::{OTHER, table};
        // One read of the table in use for the name, the day and the verdict.
        let row = service.and_then(|i| table().get(i));
        self.service = Some(ServiceOf {
            name: row.map_or(OTHER, |s| s.name),
            destination,
            tls_end: row.map(|s| s.tls_end),
            // Without a capture time a legacy flow's fate is unknown.
            broken: row.and_then(|s| {
                if self.legacy {
                    s.broken_at(self.flow.ts_ns)
                } else {
                    Some(false)
                }
            }),
        });
        self
    }

    /// The name the match came from: the SNI for a `sni` match, else the
    /// target name the event holds.
    pub fn matched_name(&self) -> Option<&str> {
        match self.matched {
            Some(Match::Sni) => self.flow.sni(),
            _ => self.name.as_deref(),
        }
    }

    /// The target name of a match that did not come from the SNI (a CNAME,
    /// a proxy's CONNECT, a DNS answer, the certificate).
    pub fn target_name(&self) -> Option<&str> {
        match self.matched {
            Some(Match::Cname | Match::Connect | Match::DnsAddress | Match::Certificate) => {
                self.name.as_deref()
            }
            _ => None,
        }
    }

    /// The alert the server answered with, if it did.
    pub fn alert_text(&self) -> Option<AlertText> {
        match self.flow.answer {
            Some(ServerAnswer::Alert { description, .. }) => Some(match known_alert(description) {
                Some(name) => AlertText::Name(name),
                None => AlertText::Code(description),
            }),
            _ => None,
        }
    }

    /// The server asked for another hello (HelloRetryRequest) first.
    pub fn hello_retry(&self) -> bool {
        matches!(
            self.flow.answer,
            Some(ServerAnswer::Hello { retried: true, .. })
        )
    }

    pub fn preamble_kind(&self) -> PreambleKind {
        self.flow
            .preamble
            .as_deref()
            .map_or(PreambleKind::None, |p| p.kind)
    }

    /// The event as one line of JSON (with its newline) at the end of `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_json_judged(&PolicySet::default(), out);
    }

    /// [`FlowEvent::write_json`], with the verdicts of `policies`.
    pub fn write_json_judged(&self, policies: &PolicySet, out: &mut Vec<u8>) {
        let f = &self.flow;
        let client = f.client.as_ref();
        let fingerprint = client.and_then(|c| c.fingerprint.as_ref());
        let preamble = f.preamble.as_deref();
        let mut l = json::Line::begin(out);
        l.plain_with(json_key!("ts"), |o| json::rfc3339_micros(o, f.ts_ns));
        l.ip(json_key!("src_ip"), f.client_ip);
        l.u64(json_key!("src_port"), u64::from(f.client_port));
        l.ip(json_key!("dst_ip"), f.server_ip);
        l.u64(json_key!("dst_port"), u64::from(f.server_port));
        l.opt_str(json_key!("sni"), f.sni());
        opt_version(&mut l, json_key!("client_max_version"), f.client_max());
        opt_version(&mut l, json_key!("negotiated_version"), f.negotiated());
        match self.alert_text() {
            Some(alert) => l.plain_with(json_key!("server_alert"), |o| alert.write(o)),
            None => l.null(json_key!("server_alert")),
        }
        l.plain(json_key!("outcome"), f.outcome().as_str());
        l.bool(json_key!("legacy"), self.legacy);
        l.bool(json_key!("target"), self.matched.is_some());
        l.opt_plain(json_key!("match"), self.matched.map(Match::as_str));
        // (letters and digits only)
        l.opt_plain(
            json_key!("account"),
            self.matched_name().and_then(account_of),
        );
        l.opt_str(json_key!("target_name"), self.target_name());
        opt_version(
            &mut l,
            json_key!("client_hello_version"),
            client.map(|c| c.hello_version),
        );
        match client.and_then(|c| c.supported_versions.as_deref()) {
            Some(list) => l.array(json_key!("client_versions"), |a| version_items(a, list)),
            None => l.null(json_key!("client_versions")),
        }
        l.bool(
            json_key!("sslv2_hello"),
            client.is_some_and(|c| c.sslv2_format),
        );
        l.bool(json_key!("hello_retry"), self.hello_retry());
        l.bool(json_key!("incomplete"), f.incomplete());
        l.plain(json_key!("preamble"), self.preamble_kind().as_str());
        l.bool(
            json_key!("proxy"),
            preamble.is_some_and(|p| p.kind.is_proxy()),
        );
        l.opt_str(
            json_key!("connect_authority"),
            preamble.and_then(|p| p.authority.as_deref()),
        );
        match preamble.and_then(|p| p.proxied_src) {
            Some(a) => l.str_with(json_key!("proxied_src"), |o| socket_text(o, a)),
            None => l.null(json_key!("proxied_src")),
        }
        l.bool(json_key!("relayed"), self.relayed);
        match fingerprint {
            Some(fp) => l.plain_with(json_key!("ja4"), |o| o.extend_from_slice(fp.ja4_bytes())),
            None => l.null(json_key!("ja4")),
        }
        match fingerprint.and_then(|f| f.ja3_md5()) {
            Some(md5) => l.plain_with(json_key!("ja3_hash"), |o| md5_hex(o, &md5)),
            None => l.null(json_key!("ja3_hash")),
        }
        let service = self.service.as_ref();
        l.opt_plain(json_key!("service"), service.map(|s| s.name));
        l.opt_str(json_key!("destination"), service.map(|s| &*s.destination));
        l.opt_plain(
            json_key!("service_tls_end"),
            service.and_then(|s| s.tls_end),
        );
        l.opt_bool(json_key!("service_broken"), service.and_then(|s| s.broken));
        l.opt_str(json_key!("client_label"), self.client_label.as_deref());
        l.opt_str(json_key!("src_name"), self.src_name.as_ref().map(|n| &*n.0));
        l.opt_plain(
            json_key!("src_name_source"),
            self.src_name.as_ref().map(|n| n.1.as_str()),
        );
        if let Some(raw) = client.and_then(|c| c.raw_fingerprint.as_deref()) {
            l.str(json_key!("ja4_r"), &raw.ja4_r);
            l.str(json_key!("ja3"), &raw.ja3);
        }
        fields::policy_verdicts(&mut l, self, policies);
        l.end();
        out.push(b'\n');
    }

    /// Marks the event as a proxy's relayed flow.
    pub fn relayed(mut self) -> FlowEvent {
        self.relayed = true;
        self
    }
}

#[cfg(test)]
impl FlowEvent {
    /// An event of `flow` alone: not legacy, no target, no names.
    pub fn of_flow_for_test(flow: HandshakeSummary) -> FlowEvent {
        FlowEvent {
            flow,
            legacy: false,
            matched: None,
            name: None,
            relayed: false,
            service: None,
            client_label: None,
            src_name: None,
        }
    }
}

/// A server's alert as events write it: its name, or `0x` and its code in
/// hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertText {
    Name(&'static str),
    Code(u8),
}

impl AlertText {
    pub fn write(self, out: &mut Vec<u8>) {
        match self {
            AlertText::Name(name) => out.extend_from_slice(name.as_bytes()),
            AlertText::Code(code) => {
                let mut hex = [b'0', b'x', 0, 0];
                crate::tls::fingerprint::hex_into(&[code], &mut hex[2..]);
                out.extend_from_slice(&hex);
            }
        }
    }
}

/// The versions of a supported_versions list as array items (GREASE left
/// out).
fn version_items(a: &mut json::Array<'_>, list: &[Version]) {
    for v in list.iter().filter(|v| !v.is_grease()) {
        match v.name() {
            Some(name) => a.plain(name),
            None => a.plain_with(|o| version_hex(o, *v)),
        }
    }
}

/// `address:port` (IPv6 in brackets, as `Display` writes it).
fn socket_text(out: &mut Vec<u8>, a: std::net::SocketAddr) {
    match a {
        std::net::SocketAddr::V4(v4) => {
            json::ip_text(out, IpAddr::V4(*v4.ip()));
            out.push(b':');
            json::decimal(out, u64::from(v4.port()));
        }
        v6 => out.extend_from_slice(v6.to_string().as_bytes()),
    }
}

/// An MD5 digest in lowercase hex.
fn md5_hex(out: &mut Vec<u8>, md5: &[u8; 16]) {
    let mut hex = [0u8; 32];
    crate::tls::fingerprint::hex_into(md5, &mut hex);
    out.extend_from_slice(&hex);
}

/// A version's event text: its name, or `0x` and four hex digits.
fn opt_version(l: &mut json::Line<'_>, key: &'static str, v: Option<Version>) {
    match v {
        Some(v) => match v.name() {
            Some(name) => l.plain(key, name),
            None => l.plain_with(key, |o| version_hex(o, v)),
        },
        None => l.null(key),
    }
}

fn version_hex(out: &mut Vec<u8>, v: Version) {
    let mut hex = [b'0', b'x', 0, 0, 0, 0];
    crate::tls::fingerprint::hex_into(&v.0.to_be_bytes(), &mut hex[2..]);
    out.extend_from_slice(&hex);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(e: &FlowEvent) -> serde_json::Value {
        let mut out = Vec::new();
        e.write_json(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice(&out).unwrap()
    }

    /// Values off the common path: unknown versions and alerts, GREASE in
    /// supported_versions, IPv6, a PROXY header's source, names that need
    /// escapes, a service.
    #[test]
    fn events_line_edge_values() {
        let mut flow = HandshakeSummary::hello_for_test(
            "2001:db8::1".parse::<IpAddr>().unwrap(),
            [10, 0, 0, 2],
            0x0a0b,
            Some("a\"b\\c\u{1}.blob.core.windows.net"),
        );
        flow.ts_ns = 1_798_761_600_004_111_999;
        let c = flow.client.as_mut().unwrap();
        c.supported_versions = Some(vec![Version(0x7a7a), Version(0x0304), Version(0x0a0b)]);
        flow.answer = Some(ServerAnswer::Alert {
            level: 2,
            description: 200,
        });
        let mut p = crate::preamble::tls(PreambleKind::ProxyProtocol, 0, 0);
        p.proxied_src = Some("198.51.100.7:51234".parse().unwrap());
        p.authority = Some("x\ty:443".into());
        flow.preamble = Some(Box::new(p));
        let e = FlowEvent {
            flow,
            legacy: true,
            matched: Some(Match::Sni),
            name: None,
            relayed: false,
            service: None,
            client_label: Some("Lib \"quoted\"".into()),
            src_name: Some(("pc1.corp".into(), NameSource::Dhcp)),
        }
        .with_service(Some(0), "acct".into());
        let v = line(&e);
        assert_eq!(v["ts"], "2027-01-01T00:00:00.004111Z");
        assert_eq!(v["src_ip"], "2001:db8::1");
        assert_eq!(v["sni"], "a\"b\\c\u{1}.blob.core.windows.net");
        assert_eq!(v["client_hello_version"], "0x0a0b");
        assert_eq!(
            v["client_versions"],
            serde_json::json!(["TLSv1.3", "0x0a0b"])
        );
        assert_eq!(v["client_max_version"], "TLSv1.3");
        assert_eq!(v["server_alert"], "0xc8");
        assert_eq!(v["outcome"], "rejected");
        assert_eq!(v["match"], "sni");
        // (a `sni` match's account is the SNI's: none for this one)
        assert_eq!(v["account"], serde_json::Value::Null);
        assert_eq!(v["target_name"], serde_json::Value::Null);
        assert_eq!(v["preamble"], "proxy_protocol");
        assert_eq!(v["proxied_src"], "198.51.100.7:51234");
        assert_eq!(v["connect_authority"], "x\ty:443");
        assert_eq!(v["client_label"], "Lib \"quoted\"");
        assert_eq!(v["src_name"], "pc1.corp");
        assert_eq!(v["src_name_source"], "dhcp");
        let row = &crate::targets::services::table()[0];
        assert_eq!(v["service"], row.name);
        assert_eq!(v["destination"], "acct");
        assert_eq!(v["service_tls_end"], row.tls_end);
        assert_eq!(v["service_broken"], true);
        assert!(v.get("ja4_r").is_none());
        let fields: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(fields.len(), 34, "{fields:?}");
    }

    /// Every closed set an event writes by `as_str` serialises the same
    /// through serde (the state file and other readers use serde).
    #[test]
    fn events_label_names_match_serde() {
        for m in Match::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        for k in PreambleKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for o in crate::tls::Outcome::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        for n in NameSource::ALL {
            assert_eq!(serde_json::to_value(n).unwrap(), n.as_str());
        }
    }
}
