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

use serde::Serialize;

use crate::hosts::Who;
pub use crate::metrics::Metrics;
use crate::preamble::Kind as PreambleKind;
use crate::targets::{Match, account_of};
use crate::tls::{HandshakeSummary, Outcome, Version};

mod output;

pub use output::*;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FlowEvent {
    /// RFC 3339 capture time of the ClientHello (or of the answer when none was seen).
    pub ts: String,
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    pub sni: Option<String>,
    pub client_max_version: Option<String>,
    pub negotiated_version: Option<String>,
    pub server_alert: Option<String>,
    pub outcome: Outcome,
    pub legacy: bool,
    pub target: bool,
    /// How the server was recognised as a target (sni, cname, dns_address,
    /// cidr, certificate); null for other flows.
    #[serde(rename = "match")]
    pub matched: Option<Match>,
    /// The storage account, when the target name is known (from the SNI or DNS).
    pub account: Option<String>,
    /// The target name the SNI or address led to through DNS, or the
    /// certificate name that matched a target (often a wildcard).
    pub target_name: Option<String>,
    /// The ClientHello's own version field (legacy_version).
    pub client_hello_version: Option<String>,
    /// supported_versions as offered, GREASE removed; null without the extension.
    pub client_versions: Option<Vec<String>>,
    /// The ClientHello used the SSLv2-compatible record format.
    pub sslv2_hello: bool,
    /// The server sent a HelloRetryRequest before its ServerHello.
    pub hello_retry: bool,
    /// The capture's snap length cut the handshake: only what its first bytes
    /// show is reported (client_max_version and negotiated_version may be null).
    pub incomplete: bool,
    /// What preceded TLS in the stream: none, http_connect, socks,
    /// proxy_protocol, smtp, imap, pop3, ftp, postgres, mysql, tds, ldap, xmpp.
    pub preamble: PreambleKind,
    /// The client reached the server through a proxy it asked (HTTP CONNECT,
    /// SOCKS); src_ip is the client, dst_ip the proxy.
    pub proxy: bool,
    /// The host:port the client asked its proxy for (beside the SNI when
    /// both exist).
    pub connect_authority: Option<String>,
    /// The original client address a PROXY protocol header carried.
    pub proxied_src: Option<String>,
    /// The source is a --proxy: it relays a client's handshake.
    pub relayed: bool,
    /// JA4 of the ClientHello (FoxIO's TLS client fingerprint); null for a
    /// cut hello, or none seen.
    pub ja4: Option<String>,
    /// MD5 of the ClientHello's JA3 string (GREASE removed, as Wireshark).
    pub ja3_hash: Option<String>,
    /// The Microsoft service of a target flow (a name of `tlscensus
    /// services`, or `other` for a `--target` pattern no service covers);
    /// null for other flows.
    pub service: Option<&'static str>,
    /// The destination under the service: the first label of the target
    /// name (storage account, SQL server, namespace, vault), or the target
    /// name or server address the match came from.
    pub destination: Option<String>,
    /// The day the service stops accepting TLS 1.0/1.1.
    pub service_tls_end: Option<&'static str>,
    /// A legacy flow on or after that day (capture time): it fails now, or
    /// will once the service enforces it everywhere ("already broken");
    /// false for a modern flow or a legacy one before the day ("breaks on
    /// service_tls_end").
    pub service_broken: Option<bool>,
    /// The software the client-label catalogue names for the JA4; null
    /// when the catalogue does not know it.
    pub client_label: Option<String>,
    /// The source's name from passive host names (DHCP, NBNS, mDNS...) as
    /// known when the flow was reported; null when none.
    pub src_name: Option<String>,
    /// Where src_name came from: dhcp, dhcpv6, kerberos, dns_ptr, nbns,
    /// mdns, llmnr.
    pub src_name_source: Option<&'static str>,
    /// With --raw-fingerprints: JA4_r (the sorted cipher and extension
    /// lists and the signature algorithms JA4 hashes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4_r: Option<String>,
    /// With --raw-fingerprints: the JA3 string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3: Option<String>,
}

impl FlowEvent {
    pub fn new(
        s: &HandshakeSummary,
        legacy: bool,
        matched: Option<(Match, Option<Arc<str>>)>,
        who: Who<'_>,
    ) -> FlowEvent {
        let (how, name) = match matched {
            Some((how, name)) => (Some(how), name),
            None => (None, None),
        };
        let ts = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(s.ts_ns);
        let client = s.client.as_ref();
        let raw = client.and_then(|c| c.raw_fingerprint.as_deref());
        let src_name = who.name(s.client_ip, s.ts_ns);
        FlowEvent {
            ts: humantime::format_rfc3339_micros(ts).to_string(),
            src_ip: s.client_ip,
            src_port: s.client_port,
            dst_ip: s.server_ip,
            dst_port: s.server_port,
            sni: s.sni().map(str::to_string),
            client_max_version: s.client_max().map(|v| v.to_string()),
            negotiated_version: s.negotiated().map(|v| v.to_string()),
            server_alert: s.alert_name(),
            outcome: s.outcome(),
            legacy,
            target: how.is_some(),
            matched: how,
            account: name.as_deref().and_then(account_of).map(str::to_string),
            target_name: match how {
                Some(Match::Cname | Match::Connect | Match::DnsAddress | Match::Certificate) => {
                    name.as_deref().map(str::to_string)
                }
                _ => None,
            },
            client_hello_version: client.map(|c| c.hello_version.to_string()),
            client_versions: client.and_then(|c| {
                c.supported_versions.as_ref().map(|l| {
                    l.iter()
                        .filter(|v| !v.is_grease())
                        .map(Version::to_string)
                        .collect()
                })
            }),
            sslv2_hello: client.is_some_and(|c| c.sslv2_format),
            hello_retry: matches!(
                s.answer,
                Some(crate::tls::ServerAnswer::Hello { retried: true, .. })
            ),
            incomplete: s.incomplete(),
            preamble: s.preamble.as_ref().map_or(PreambleKind::None, |p| p.kind),
            proxy: s.preamble.as_ref().is_some_and(|p| p.kind.is_proxy()),
            connect_authority: s
                .preamble
                .as_ref()
                .and_then(|p| p.authority.as_deref())
                .map(str::to_string),
            proxied_src: s
                .preamble
                .as_ref()
                .and_then(|p| p.proxied_src)
                .map(|a| a.to_string()),
            relayed: false,
            ja4: client
                .and_then(|c| c.fingerprint.as_ref())
                .map(|f| f.ja4().to_string()),
            ja3_hash: client
                .and_then(|c| c.fingerprint.as_ref())
                .and_then(|f| f.ja3_hash()),
            service: None,
            destination: None,
            service_tls_end: None,
            service_broken: None,
            client_label: client
                .and_then(|c| c.fingerprint.as_ref())
                .and_then(|f| who.label(f.ja4()))
                .map(|l| l.to_string()),
            src_name: src_name.as_ref().map(|n| n.0.to_string()),
            src_name_source: src_name.map(|n| n.1.as_str()),
            ja4_r: raw.map(|r| r.ja4_r.to_string()),
            ja3: raw.map(|r| r.ja3.to_string()),
        }
    }

    /// Names the target flow's service and destination.
    pub fn with_service(
        mut self,
        service: Option<usize>,
        destination: String,
        ts_ns: u64,
    ) -> FlowEvent {
        self.service = Some(crate::targets::services::label(service));
        self.destination = Some(destination);
        if let Some(s) = service.and_then(|i| crate::targets::services::table().get(i)) {
            self.service_tls_end = Some(s.tls_end);
            // Without a capture time a legacy flow's fate is unknown.
            self.service_broken = if self.legacy {
                s.broken_at(ts_ns)
            } else {
                Some(false)
            };
        }
        self
    }

    /// Marks the event as a proxy's relayed flow.
    pub fn relayed(mut self) -> FlowEvent {
        self.relayed = true;
        self
    }
}
