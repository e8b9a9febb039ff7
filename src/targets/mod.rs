//! Matching: whether a flow's server is a target, and how that is known.
//!
//! Input: a flow's [`HandshakeSummary`] (its SNI, server address, server
//! certificate) and what passive DNS said about it at the ClientHello
//! ([`DnsAtHello`]). Output: a [`Match`] and the target name it leads to, or
//! nothing. The rules and their order live here and nowhere else; the names
//! ([`names`]), address prefixes ([`prefixes`]) and passive DNS ([`dns`]) sit
//! behind them.

pub mod passive_dns;
pub mod patterns;
pub mod prefixes;
pub mod services;

use std::net::IpAddr;
use std::sync::Arc;

pub use patterns::{TargetSet, account_of};
use prefixes::PrefixSet;

use crate::tls::HandshakeSummary;
use crate::tls::summary::DnsAtHello;
use passive_dns::PassiveDns;

crate::label_set! {
    /// How a flow's server came to be a target.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Match {
        /// The SNI matches a target pattern.
        Sni = "sni",
        /// The SNI is an alias (CNAME chain) of a target name.
        Cname = "cname",
        /// No SNI; the client asked a proxy for a target (HTTP CONNECT
        /// authority, SOCKS destination name).
        Connect = "connect",
        /// No SNI; the server address was a DNS answer for a target name.
        DnsAddress = "dns_address",
        /// No SNI; the server address is in --target-cidr or the service tags.
        Cidr = "cidr",
        /// No SNI; the server's certificate names a target.
        Certificate = "certificate",
    }
}

/// The rules, over the configured names and prefixes.
#[derive(Clone, Copy)]
pub struct Matcher<'a> {
    pub names: &'a TargetSet,
    pub prefixes: &'a PrefixSet,
}

impl Matcher<'_> {
    /// Whether a flow's server is a target, and how that is known, with the
    /// target name it leads to (which names the storage account; for a
    /// `sni` match the SNI itself, which the flow holds: `None`), in the
    /// order of [`Match`]: the SNI itself, the SNI as a DNS alias of a target;
    /// without SNI, the host the client asked its proxy for, the server address as a DNS answer for a target, the
    /// address in the target prefixes, a name in the server's certificate
    /// (TLS ≤ 1.2; the first matching name is the target name). DNS counts as
    /// it was at the ClientHello (`s.dns`), else as `dns` says for that time.
    pub fn target_match(
        &self,
        dns: &PassiveDns,
        s: &HandshakeSummary,
    ) -> Option<(Match, Option<Arc<str>>)> {
        let dns = s
            .dns
            .clone()
            .unwrap_or_else(|| self.dns_at_hello(dns, s.server_ip, s.sni(), s.ts_ns));
        match s.sni() {
            Some(name) if self.names.matches(name) => Some((Match::Sni, None)),
            Some(_) => match dns {
                DnsAtHello::Alias(target) => Some((Match::Cname, Some(target))),
                _ => None,
            },
            None => {
                let asked = s.preamble.as_ref().and_then(|p| p.authority_host());
                if let Some(host) = asked.filter(|h| self.names.matches(h)) {
                    Some((Match::Connect, Some(Arc::from(host))))
                } else if let DnsAtHello::Address(target) = dns {
                    Some((Match::DnsAddress, Some(target)))
                } else if self.prefixes.contains(s.server_ip) {
                    Some((Match::Cidr, None))
                } else {
                    let cert = s.certificate.as_ref()?;
                    cert.names()
                        .find(|n| self.names.matches_certificate_name(n))
                        .map(|n| (Match::Certificate, Some(Arc::from(n))))
                }
            }
        }
    }

    /// Passive DNS about a flow's server at time `t`: the SNI as an alias of
    /// a target (when the SNI is not a target itself), else the address as an
    /// answer for one.
    pub fn dns_at_hello(
        &self,
        dns: &PassiveDns,
        server: IpAddr,
        sni: Option<&str>,
        t: u64,
    ) -> DnsAtHello {
        // Most mirrors carry no DNS: then no name is matched or hashed.
        if dns.is_empty() {
            return DnsAtHello::Nothing;
        }
        match sni {
            Some(name) if self.names.matches(name) => DnsAtHello::Nothing,
            Some(name) => dns
                .alias_of(name, t)
                .map_or(DnsAtHello::Nothing, DnsAtHello::Alias),
            None => dns
                .target_of(server, t)
                .map_or(DnsAtHello::Nothing, DnsAtHello::Address),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::Version;

    fn flow(sni: Option<&str>, server: [u8; 4], dns: DnsAtHello) -> HandshakeSummary {
        HandshakeSummary {
            ts_ns: 5,
            dns: Some(dns),
            ..HandshakeSummary::hello_for_test([10, 0, 0, 1], server, Version::TLS10.0, sni)
        }
    }

    /// The rule order: SNI, then the SNI as an alias; without SNI the DNS
    /// answer, then the prefixes. An SNI that names something else is never
    /// a target by its address.
    #[test]
    fn match_rule_order() {
        let names = TargetSet::defaults();
        let prefixes = PrefixSet::from_prefixes([(IpAddr::from([20, 60, 0, 0]), 16)]);
        let m = Matcher {
            names: &names,
            prefixes: &prefixes,
        };
        let store = PassiveDns::new(8, 0, 60);
        let alias = || DnsAtHello::Alias(Arc::from("acct.blob.core.windows.net"));
        let addr = || DnsAtHello::Address(Arc::from("acct.blob.core.windows.net"));
        let cases = [
            (
                flow(Some("a.blob.core.windows.net"), [20, 60, 0, 1], alias()),
                Some(Match::Sni),
            ),
            (
                flow(Some("files.contoso.example"), [20, 60, 0, 1], alias()),
                Some(Match::Cname),
            ),
            (
                flow(Some("files.contoso.example"), [20, 60, 0, 1], addr()),
                None,
            ),
            (flow(None, [20, 60, 0, 1], addr()), Some(Match::DnsAddress)),
            (
                flow(None, [20, 60, 0, 1], DnsAtHello::Nothing),
                Some(Match::Cidr),
            ),
            (flow(None, [20, 61, 0, 1], DnsAtHello::Nothing), None),
        ];
        for (i, (s, want)) in cases.iter().enumerate() {
            let got = m.target_match(&store, s).map(|(how, _)| how);
            assert_eq!(got, *want, "case {i}");
        }
    }
}
