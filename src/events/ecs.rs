//! An event in the Elastic Common Schema (`--events-format ecs`): one JSON
//! object per line, nested as ECS documents are, with the flow's facts in
//! ECS fields (`@timestamp`, `event.*`, `source.*`, `destination.*`,
//! `network.*`, `tls.*`, `related.*`) and what ECS has no field for under
//! `tlscensus.*` with the native names.
//!
//! Input: a [`FlowEvent`]. Output: the line. Invariants: every field but
//! those under `tlscensus.` is an ECS field of [`ECS_VERSION`] holding a
//! value of its type (tests/it/layouts.rs checks each event of the shipped
//! captures against the published field list); unknown facts are left out.

use super::fields::{census_fields, cipher_text, dotted_version, group_text, uid};
use super::{FlowEvent, json, md5_hex};
use crate::json_key;
use crate::policy::PolicySet;
use crate::tls::Outcome;

/// The ECS version the events follow.
pub const ECS_VERSION: &str = "9.4.0";

pub fn write(ev: &FlowEvent, policies: &PolicySet, out: &mut Vec<u8>) {
    let f = &ev.flow;
    let client = f.client.as_ref();
    let server = f.server.as_deref();
    let sni = f.sni();
    let src_name = ev.src_name.as_ref().map(|n| &*n.0);
    let mut l = json::Line::begin(out);
    l.plain_with(json_key!("@timestamp"), |o| {
        json::rfc3339_micros(o, f.ts_ns)
    });
    l.object(json_key!("ecs"), |l| {
        l.plain(json_key!("version"), ECS_VERSION)
    });
    l.object(json_key!("event"), |l| {
        l.plain(json_key!("kind"), "event");
        l.array(json_key!("category"), |a| a.plain("network"));
        l.array(json_key!("type"), |a| {
            a.plain("connection");
            a.plain("protocol");
        });
        l.plain(json_key!("module"), "tlscensus");
        l.plain(json_key!("dataset"), "tlscensus.flow");
        l.plain(
            json_key!("outcome"),
            match f.outcome() {
                Outcome::Negotiated => "success",
                Outcome::Rejected => "failure",
                Outcome::Unanswered => "unknown",
            },
        );
        l.plain_with(json_key!("id"), |o| o.extend_from_slice(&uid(ev)));
    });
    l.object(json_key!("observer"), |l| {
        l.plain(json_key!("type"), "sensor");
        l.plain(json_key!("product"), "tlscensus");
    });
    l.object(json_key!("source"), |l| {
        l.ip(json_key!("ip"), f.client_ip);
        l.u64(json_key!("port"), u64::from(f.client_port));
        if let Some(name) = src_name {
            l.str(json_key!("domain"), name);
        }
    });
    l.object(json_key!("destination"), |l| {
        l.ip(json_key!("ip"), f.server_ip);
        l.u64(json_key!("port"), u64::from(f.server_port));
        if let Some(name) = sni {
            l.str(json_key!("domain"), name);
        }
    });
    l.object(json_key!("network"), |l| {
        l.plain(json_key!("transport"), "tcp");
        l.plain(
            json_key!("type"),
            if f.client_ip.is_ipv4() {
                "ipv4"
            } else {
                "ipv6"
            },
        );
        l.plain(json_key!("iana_number"), "6");
        l.plain(json_key!("protocol"), "tls");
    });
    l.object(json_key!("tls"), |l| {
        if let Some((number, protocol)) = f.negotiated().and_then(dotted_version) {
            l.plain(json_key!("version"), number);
            l.plain(json_key!("version_protocol"), protocol);
        }
        // Only a handshake that did not go through is known not to be
        // established: the census stops reading at the server's hello.
        if f.outcome() != Outcome::Negotiated {
            l.bool(json_key!("established"), false);
        }
        if let Some(s) = server {
            l.plain_with(json_key!("cipher"), |o| cipher_text(o, s.cipher));
            if let Some(g) = s.group {
                l.plain_with(json_key!("curve"), |o| group_text(o, g));
            }
            if let Some(alpn) = s.alpn.as_deref() {
                l.str(json_key!("next_protocol"), alpn);
            }
        }
        if let Some(resumed) = f.resumed() {
            l.bool(json_key!("resumed"), resumed);
        }
        l.object(json_key!("client"), |l| {
            if let Some(name) = sni {
                l.str(json_key!("server_name"), name);
            }
            let fingerprint = client.and_then(|c| c.fingerprint.as_ref());
            if let Some(md5) = fingerprint.and_then(|fp| fp.ja3_md5()) {
                l.plain_with(json_key!("ja3"), |o| md5_hex(o, &md5));
            }
            if let Some(d) = client.and_then(|c| c.detail.as_deref()) {
                l.array(json_key!("supported_ciphers"), |a| {
                    for &c in d.ciphers.iter() {
                        a.plain_with(|o| cipher_text(o, c));
                    }
                });
            }
        });
    });
    l.object(json_key!("related"), |l| {
        l.array(json_key!("ip"), |a| {
            a.ip(f.client_ip);
            a.ip(f.server_ip);
        });
        if sni.is_some() || src_name.is_some() {
            l.array(json_key!("hosts"), |a| {
                sni.into_iter().chain(src_name).for_each(|h| a.str(h));
            });
        }
    });
    l.object(json_key!("tlscensus"), |l| census_fields(l, ev, policies));
    l.end();
    out.push(b'\n');
}
