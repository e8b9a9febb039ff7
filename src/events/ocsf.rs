//! An event as an OCSF Network Activity event (`--events-format ocsf`, class
//! 4001, activity "Traffic"): the endpoints, the connection, the TLS object
//! and the JA4 fingerprint in OCSF's attributes; tlscensus' own facts, with
//! their native names, in `unmapped`.
//!
//! Input: a [`FlowEvent`]. Output: the line. Invariants: every attribute
//! is one the class or its objects have in OCSF [`OCSF_VERSION`], with a
//! value of its type and, for enums, one of its values; every required
//! attribute is there (tests/it/layouts.rs checks each event of the shipped
//! captures against the schema). `tls.version` is required: it is the
//! negotiated version, or the client's highest offered one when the server
//! did not answer with a hello; without either the TLS object is left out.
//! `severity_id` is 2 (Low) for a legacy flow, 1 (Informational) otherwise.

use super::fields::{census_fields, cipher_text, dotted_version, hex16, uid};
use super::{FlowEvent, json, md5_hex};
use crate::json_key;
use crate::policy::PolicySet;
use crate::tls::Outcome;

/// The OCSF schema version the events follow.
pub const OCSF_VERSION: &str = "1.8.0";

/// Network Activity.
const CLASS_UID: u64 = 4001;
/// Traffic: "Network traffic report".
const ACTIVITY_TRAFFIC: u64 = 6;

pub fn write(ev: &FlowEvent, policies: &PolicySet, out: &mut Vec<u8>) {
    let f = &ev.flow;
    let client = f.client.as_ref();
    let server = f.server.as_deref();
    let fingerprint = client.and_then(|c| c.fingerprint.as_ref());
    let mut l = json::Line::begin(out);
    l.u64(json_key!("class_uid"), CLASS_UID);
    l.plain(json_key!("class_name"), "Network Activity");
    l.u64(json_key!("category_uid"), CLASS_UID / 1000);
    l.plain(json_key!("category_name"), "Network Activity");
    l.u64(json_key!("activity_id"), ACTIVITY_TRAFFIC);
    l.plain(json_key!("activity_name"), "Traffic");
    l.u64(json_key!("type_uid"), CLASS_UID * 100 + ACTIVITY_TRAFFIC);
    l.plain(json_key!("type_name"), "Network Activity: Traffic");
    l.u64(json_key!("time"), f.ts_ns / 1_000_000);
    let (severity_id, severity) = if ev.legacy {
        (2, "Low")
    } else {
        (1, "Informational")
    };
    l.u64(json_key!("severity_id"), severity_id);
    l.plain(json_key!("severity"), severity);
    let (status_id, status) = match f.outcome() {
        Outcome::Negotiated => (1, "Success"),
        Outcome::Rejected => (2, "Failure"),
        Outcome::Unanswered => (0, "Unknown"),
    };
    l.u64(json_key!("status_id"), status_id);
    l.plain(json_key!("status"), status);
    if let Some(alert) = ev.alert_text() {
        l.plain_with(json_key!("status_detail"), |o| alert.write(o));
    }
    l.object(json_key!("metadata"), |l| {
        l.plain(json_key!("version"), OCSF_VERSION);
        l.object(json_key!("product"), |l| {
            l.plain(json_key!("name"), "tlscensus");
            l.plain(json_key!("vendor_name"), "tlscensus");
            l.plain(json_key!("version"), env!("CARGO_PKG_VERSION"));
        });
        l.plain_with(json_key!("uid"), |o| o.extend_from_slice(&uid(ev)));
    });
    l.object(json_key!("src_endpoint"), |l| {
        l.ip(json_key!("ip"), f.client_ip);
        l.u64(json_key!("port"), u64::from(f.client_port));
        if let Some((name, _)) = ev.src_name.as_ref() {
            l.str(json_key!("hostname"), name);
        }
    });
    l.object(json_key!("dst_endpoint"), |l| {
        l.ip(json_key!("ip"), f.server_ip);
        l.u64(json_key!("port"), u64::from(f.server_port));
        if let Some(name) = f.sni() {
            l.str(json_key!("hostname"), name);
        }
    });
    l.bool(json_key!("is_src_dst_assignment_known"), true);
    l.object(json_key!("connection_info"), |l| {
        l.plain(json_key!("protocol_name"), "tcp");
        l.u64(json_key!("protocol_num"), 6);
        l.u64(
            json_key!("protocol_ver_id"),
            if f.client_ip.is_ipv4() { 4 } else { 6 },
        );
        // Relative to a network boundary the census does not know.
        l.u64(json_key!("direction_id"), 0);
        l.plain_with(json_key!("uid"), |o| o.extend_from_slice(&uid(ev)));
    });
    if let Some(version) = f.negotiated().or_else(|| f.client_max()) {
        l.object(json_key!("tls"), |l| {
            match dotted_version(version) {
                Some((number, _)) => l.plain(json_key!("version"), number),
                None => l.plain_with(json_key!("version"), |o| hex16(o, version.0)),
            }
            if let Some(s) = server {
                l.plain_with(json_key!("cipher"), |o| cipher_text(o, s.cipher));
            }
            if let Some(name) = f.sni() {
                l.str(json_key!("sni"), name);
            }
            if let Some(d) = client.and_then(|c| c.detail.as_deref()) {
                l.array(json_key!("client_ciphers"), |a| {
                    for &c in d.ciphers.iter() {
                        a.plain_with(|o| cipher_text(o, c));
                    }
                });
            }
            if let Some(md5) = fingerprint.and_then(|fp| fp.ja3_md5()) {
                l.object(json_key!("ja3_hash"), |l| {
                    l.u64(json_key!("algorithm_id"), 1);
                    l.plain(json_key!("algorithm"), "MD5");
                    l.plain_with(json_key!("value"), |o| md5_hex(o, &md5));
                });
            }
            if let Some(crate::tls::ServerAnswer::Alert { description, .. }) = f.answer {
                l.u64(json_key!("alert"), u64::from(description));
            }
        });
    }
    if let Some(fp) = fingerprint {
        l.array(json_key!("ja4_fingerprint_list"), |a| {
            a.object(|l| {
                l.u64(json_key!("type_id"), 1);
                l.plain(json_key!("type"), "JA4");
                l.plain_with(json_key!("value"), |o| o.extend_from_slice(fp.ja4_bytes()));
            });
        });
    }
    l.object(json_key!("unmapped"), |l| census_fields(l, ev, policies));
    l.end();
    out.push(b'\n');
}
